#!/usr/bin/env python3
"""The console's page times at size: 200 syncs with 30 runs each, and one sync holding 10,000
failed rows (written straight into the SQLite state store, as runs would leave them). Starts the
given `sluice daemon`, signs in, fetches each page --requests times and prints the server time
(`Server-Timing: app;dur=`) per page: median, p95 and max, in ms. Standard library only.

    scripts/bench --console                  # builds release, then runs this
    python3 scripts/bench_console.py --sluice target/release/sluice [--requests 50] [--keep DIR]

VV=1 starts the daemon with -vv: with --keep, DIR/daemon.log then has each Syncs view's phases
(the run reads, all its data gathered, rendering) in ms.
"""

import argparse
import http.client
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

TOKEN = "bench-console-token"


def project(root, syncs):
    os.makedirs(os.path.join(root, "syncs"))
    with open(os.path.join(root, "sluice.toml"), "w") as f:
        f.write(
            '[state]\nurl = "sqlite://.sluice/state.db"\n\n[sources.wh]\nkind = "duckdb"\n\n'
            '[destinations.hook]\nkind = "webhook"\nurl = "http://127.0.0.1:9/unused"\n\n'
            f'[daemon]\nlisten = "127.0.0.1:0"\ntimezone = "UTC"\napi_token = "{TOKEN}"\n'
        )
    for i in range(syncs):
        name = "big" if i == 0 else f"s{i:03}"
        with open(os.path.join(root, "syncs", f"{name}.sql"), "w") as f:
            f.write('/* sluice\ndestination = "hook"\nprimary_key = "id"\nschedule = "0 0 6 * * *"\n*/\n'
                    "SELECT i AS id, 'v' || i AS v FROM range(1, 31) r(i)\n")


def start(sluice, root):
    log = open(os.path.join(root, "daemon.log"), "w")
    child = subprocess.Popen([sluice, "daemon", "--project", root] + (["-vv"] if os.environ.get("VV") else []), stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 60
    while time.time() < deadline:
        text = open(os.path.join(root, "daemon.log")).read()
        m = re.search(r"HTTP endpoint.*addr=127\.0\.0\.1:(\d+)", text)
        if m:
            return child, int(m.group(1))
        time.sleep(0.05)
    child.kill()
    sys.exit("the daemon did not log its endpoint:\n" + open(os.path.join(root, "daemon.log")).read())


def fill(db, syncs, failed):
    """30 finished runs per sync, `failed` rejected rows for `big`."""
    con = sqlite3.connect(db)
    runs = []
    for i in range(syncs):
        name = "big" if i == 0 else f"s{i:03}"
        for r in range(30):
            t = f"2026-12-0{1 + r // 10}T{10 + r % 10:02}:00:00.000Z"
            end = f"2026-12-0{1 + r // 10}T{10 + r % 10:02}:00:0{r % 9}.500Z"
            runs.append((f"{name}-{r}", name, t, end, "success" if r % 7 else "partial", 30, r, r % 3, 0, r, r % 7 == 0 and 1 or 0, 1))
    con.executemany(
        "INSERT INTO runs (id, sync, started_at, finished_at, status, rows_read, added, changed, removed, written, rejected, batches) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
    errors = [("big", os.urandom(16), f'{{"id":{{"Int":{k}}}}}', "rejected", f"email of {k} is not valid", 1,
               "2026-12-01T10:00:00.000Z", "2026-12-01T10:00:00.000Z") for k in range(1, failed + 1)]
    con.executemany(
        "INSERT INTO row_errors (sync, key_hash, key_json, kind, message, attempts, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        errors)
    con.commit()
    con.close()


def request(port, method, path, body=None, cookie=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    if cookie:
        headers["Cookie"] = cookie
    conn.request(method, path, body=body, headers=headers)
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sluice", required=True)
    p.add_argument("--syncs", type=int, default=200)
    p.add_argument("--failed", type=int, default=10000)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--keep", help="leave the project in this directory")
    a = p.parse_args()
    root = a.keep or tempfile.mkdtemp(prefix="sluice-console-bench-")
    if a.keep:
        shutil.rmtree(root, ignore_errors=True)
    project(root, a.syncs)
    # A first start creates and migrates the state store; then it is filled with the daemon stopped.
    child, _ = start(a.sluice, root)
    child.terminate()
    child.wait()
    fill(os.path.join(root, ".sluice", "state.db"), a.syncs, a.failed)
    child, port = start(a.sluice, root)
    try:
        answer = request(port, "POST", "/login", urllib.parse.urlencode({"token": TOKEN}))
        cookie = answer.getheader("Set-Cookie").split(";")[0]
        pages = {
            f"syncs ({a.syncs} syncs)": "/",
            f"sync ({a.failed} failed rows)": "/syncs/big",
            "sync, failed rows page 100": "/syncs/big?failed_page=100",
            "sync, failed rows searched": "/syncs/big?failed_q=4242",
            "run": "/syncs/big/runs/big-0",
        }
        print(f"| page | first ms | median ms | p95 ms | max ms |  ({a.requests} requests each, server time)")
        print("| --- | --- | --- | --- | --- |")
        for label, path in pages.items():
            times = []
            for _ in range(a.requests):
                answer = request(port, "GET", path, cookie=cookie)
                if answer.status != 200:
                    sys.exit(f"GET {path}: {answer.status}")
                times.append(float(answer.getheader("Server-Timing").split("dur=")[1]))
            first = times[0]
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"| {label} | {first:.1f} | {statistics.median(times):.1f} | {p95:.1f} | {times[-1]:.1f} |")
    finally:
        child.terminate()
        child.wait()
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
