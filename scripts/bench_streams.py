#!/usr/bin/env python3
"""The streams benchmark: a `sluice daemon` taking signed events at POST /hooks/bench and
sending them to a webhook destination that answers after a latency (default 100 ms +- 50 ms).

Phase 1 (latency): events posted at --rate per second for --seconds; each event's time from its
POST to its arrival at the destination. Prints p50/p95/p99/max. Target: p95 < 2 s at 50 events/s
with the default debounce (1 s).

Phase 2 (memory): --rss-events events (default 100,000) posted at --rss-rate per second, the
daemon's RSS sampled every tenth of them. Target: flat.

    scripts/bench --streams [--sluice target/release/sluice] [--rate 50] [--seconds 60]
                            [--rss-events 100000] [--rss-rate 400] [--latency-ms 100]
                            [--jitter-ms 50] [--seed N]

Standard library only. The seed of the destination's latencies is printed and replayable.
"""

import argparse
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """A webhook destination: records when each event's row arrives, answers after a latency."""

    def __init__(self, latency_ms: float, jitter_ms: float, seed: int):
        self.arrived = {}
        self.rows = 0
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.monotonic()
                with sink.lock:
                    delay = max(0.0, latency_ms + sink.rng.uniform(-jitter_ms, jitter_ms)) / 1000
                    for row in json.loads(body).get("rows", []):
                        sink.rows += 1
                        sink.arrived.setdefault(row["key"]["event_id"], now)
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def project(root: str, port: int, sink_url: str, state_url: str) -> None:
    os.makedirs(os.path.join(root, "syncs"))
    with open(os.path.join(root, "sluice.toml"), "w") as f:
        f.write(f"""[state]
url = "{state_url}"

[daemon]
listen = "127.0.0.1:{port}"
api_token = "bench"

[streams.bench]
secret = "{SECRET}"
signature = "hmac-sha256"
id_header = "X-Delivery"

[destinations.hook]
kind = "webhook"
url = "{sink_url}"
""")
    with open(os.path.join(root, "syncs", "events_to_hook.sql"), "w") as f:
        f.write("""/* sluice
source = "stream:bench"
trigger = "on_event"
destination = "hook"
primary_key = "event_id"
mode = "insert"
*/
SELECT id AS event_id, payload->>'email' AS email, CAST(payload->>'n' AS BIGINT) AS n FROM events
""")


class Poster:
    """Posts signed events over one kept-alive connection."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, n: int) -> None:
        body = json.dumps({"n": n, "email": f"person{n}@example.com", "padding": "x" * 200}).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Signature": signature, "X-Delivery": f"e{n}"}
        try:
            self.conn.request("POST", "/hooks/bench", body=body, headers=headers)
            answer = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The daemon serves one connection for at most two minutes (then closes it, as a
            # kept-alive connection may be closed): reconnect and send the same delivery again,
            # as a real sender would. Its delivery id makes it stored once either way.
            self.conn.close()
            self.conn.request("POST", "/hooks/bench", body=body, headers=headers)
            answer = self.conn.getresponse()
        text = answer.read()
        if answer.status != 200:
            raise SystemExit(f"event {n} refused: {answer.status} {text!r}")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_for(what, check, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def paced(poster: Poster, first: int, count: int, rate: float, sent: dict) -> None:
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        n = first + i
        sent[f"e{n}"] = time.monotonic()
        poster.post(n)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluice", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "sluice"))
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rss-events", type=int, default=100_000)
    parser.add_argument("--rss-rate", type=float, default=400)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--jitter-ms", type=float, default=50)
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "little"))
    args = parser.parse_args()
    print(f"seed {args.seed} (replay with --seed {args.seed}); sluice {args.sluice}", file=sys.stderr)

    root = tempfile.mkdtemp(prefix="sluice-bench-streams-")
    sink = Sink(args.latency_ms, args.jitter_ms, args.seed)
    port = free_port()
    project(root, port, sink.url, "sqlite://.sluice/state.db")
    log = open(os.path.join(root, "daemon.log"), "w")
    daemon = subprocess.Popen([args.sluice, "daemon", "--project", root], stderr=log, stdout=subprocess.DEVNULL)
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for("the daemon's endpoint", up, 30)
        poster = Poster(port)

        # Phase 1: latency at a steady rate.
        sent = {}
        total = int(args.rate * args.seconds)
        paced(poster, 0, total, args.rate, sent)
        wait_for("every event at the destination", lambda: all(k in sink.arrived for k in sent), 60)
        lat = sorted(sink.arrived[k] - sent[k] for k in sent)
        q = statistics.quantiles(lat, n=100)
        print(f"latency: {total} events at {args.rate:g}/s, destination {args.latency_ms:g} ms +- {args.jitter_ms:g} ms: "
              f"p50 {q[49]:.3f} s, p95 {q[94]:.3f} s, p99 {q[98]:.3f} s, max {lat[-1]:.3f} s")

        # Phase 2: RSS over many events.
        samples = []
        step = max(1, args.rss_events // 10)
        first = total
        for chunk in range(10):
            chunk_sent = {}
            paced(poster, first + chunk * step, step, args.rss_rate, chunk_sent)
            sent.update(chunk_sent)
            samples.append((first + (chunk + 1) * step - total, rss_kib(daemon.pid)))
        wait_for("every event at the destination", lambda: all(k in sink.arrived for k in sent), 120)
        samples.append(("all sent", rss_kib(daemon.pid)))
        print("rss (MiB) after N events: " + ", ".join(f"{n}: {kib / 1024:.1f}" for n, kib in samples))
        print(f"events posted: {len(sent)}, rows arrived: {sink.rows} (each event once: {sink.rows == len(sent)})")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
        if os.environ.get("SLUICE_BENCH_KEEP"):
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
