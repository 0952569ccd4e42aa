#!/usr/bin/env python3
"""The diff in the warehouse against the diff in sluice, at size (issue #30): a Postgres model
of --rows rows, 1% of it changed before each measured run, synced to a webhook that answers
after --latency ms. For each of `diff = "warehouse"` and `diff = "local"`: the first run (every
row sent), then --runs measured runs, paired A B A B, each timed by GNU time (wall and CPU
seconds, the sluice process's peak memory; medians with min-max, and the A/B wall ratio of each
pair); and the database's own time for the warehouse diff's query alone (the query sluice logs
at -vv, run by psql in the same settings). A run that fails stops the benchmark with its output:
a failed run's figures are not figures. Not run by CI. Standard library, psql (or the mariadb
client) and /usr/bin/time.

    scripts/bench --warehouse                     # builds release, then runs this
    python3 scripts/bench_warehouse.py --sluice target/release/sluice --rows 10000000 [--runs 3]
        [--only warehouse] [--keep DIR] [--source duckdb [--memory-limit 256MB] | --source mysql]

Postgres: $SLUICE_BENCH_PG (default postgres://postgres@127.0.0.1:5432/postgres); the database
sluice_bench_wh is created there and dropped afterwards. DuckDB: an in-memory source whose model
generates the rows (`range`) and reads the changing column from tick.csv, which each measured
run rewrites first; the join runs in sluice's process, under the source's `memory_limit`; "the
query alone" is then a plan (the same query, nothing sent). MariaDB/MySQL: $SLUICE_BENCH_MYSQL
(default mysql://root@127.0.0.1:3306), the same table and model as Postgres in the database
sluice_bench_wh, dropped afterwards; the query alone is run by the mariadb client.
"""

import argparse
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

PG = os.environ.get("SLUICE_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
MY = urllib.parse.urlsplit(os.environ.get("SLUICE_BENCH_MYSQL", "mysql://root@127.0.0.1:3306"))
DB = "sluice_bench_wh"


def db_url(database: str) -> str:
    parts = urllib.parse.urlsplit(PG)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def my_args(database: str = "") -> list:
    """The mariadb client's arguments for $SLUICE_BENCH_MYSQL (the password through MYSQL_PWD)."""
    args = ["mariadb", "-h", MY.hostname or "127.0.0.1", "-P", str(MY.port or 3306), "-u", MY.username or "root", "-N", "-B"]
    return args + ([database] if database else [])


def my_env() -> dict:
    return {**os.environ, "MYSQL_PWD": urllib.parse.unquote(MY.password or "")}


def mysql(database: str, sql: str) -> str:
    out = subprocess.run(my_args(database) + ["-e", sql], check=True, capture_output=True, text=True, env=my_env())
    return out.stdout.strip()


def my_url(database: str) -> str:
    return urllib.parse.urlunsplit(MY._replace(path="/" + database))


def psql(database: str, sql: str, quiet: bool = True) -> str:
    args = ["psql", db_url(database), "-v", "ON_ERROR_STOP=1", "-X", "-At", "-c", sql]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Sink:
    """A webhook destination that takes every batch after `latency_ms`, keeping nothing."""

    def __init__(self, latency_ms: float, port: int = 0):
        delay = latency_ms / 1000.0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


MODEL = """SELECT b.id, b.email,
       CASE WHEN b.id % 100 = 0 THEN b.plan + t.n ELSE b.plan END AS plan
FROM big b CROSS JOIN tick t"""


def duck_model(rows: int) -> str:
    return f"""SELECT b.id, b.email,
       CASE WHEN b.id % 100 = 0 THEN b.plan + t.n ELSE b.plan END AS plan
FROM (SELECT i AS id, md5(i::VARCHAR) || '@example.com' AS email, (i % 7)::BIGINT AS plan
      FROM range(1, {rows + 1}) r(i)) b
CROSS JOIN read_csv('tick.csv', columns = {{'n': 'BIGINT'}}, header = true) t"""


def project(root: str, sink_url: str, source: str, rows: int, memory_limit: str) -> None:
    os.makedirs(os.path.join(root, "syncs"), exist_ok=True)
    if source == "duckdb":
        table = f'kind = "duckdb"\nmemory_limit = "{memory_limit}"'
        model = duck_model(rows)
        with open(os.path.join(root, "tick.csv"), "w") as f:
            f.write("n\n0\n")
    elif source == "mysql":
        table = f'kind = "mysql"\nurl = "{my_url(DB)}"\nstate_schema = "{DB}_state"'
        model = MODEL
    else:
        table = f'kind = "postgres"\nurl = "{db_url(DB)}"'
        model = MODEL
    with open(os.path.join(root, "sluice.toml"), "w") as f:
        f.write(
            f'[state]\nurl = "sqlite://.sluice/state.db"\n\n[sources.pg]\n{table}\n\n'
            f'[destinations.hook]\nkind = "webhook"\nurl = "{sink_url}"\nmax_batch_rows = 1000\nmax_in_flight = 16\n'
        )
    for diff in ("warehouse", "local"):
        with open(os.path.join(root, "syncs", f"big_{diff}.sql"), "w") as f:
            f.write(f'/* sluice\nsource = "pg"\ndestination = "hook"\nprimary_key = "id"\ndiff = "{diff}"\n*/\n{model}\n')


def timed(cmd: list, log: str) -> dict:
    """One run under GNU time. A failed run stops the benchmark, showing what it printed (the
    command appends its output to `log`)."""
    out = subprocess.run(["/usr/bin/time", "-f", "TIMED %e %U %S %M", *cmd], capture_output=True, text=True)
    m = re.search(r"TIMED ([\d.]+) ([\d.]+) ([\d.]+) (\d+)\s*$", out.stderr)
    if out.returncode != 0 or not m:
        tail = open(log).read()[-4000:] if os.path.exists(log) else ""
        sys.exit(f"a run failed (exit {out.returncode}), so there are no figures: {' '.join(cmd)}\n{out.stdout}{out.stderr}{tail}")
    return {"wall s": float(m[1]), "cpu s": float(m[2]) + float(m[3]), "peak MiB": int(m[4]) / 1024}


def show(name: str, results: list) -> None:
    for figure in ("wall s", "cpu s", "peak MiB"):
        xs = sorted(r[figure] for r in results)
        print(f"{name} {figure:<9} median {xs[len(xs) // 2]:10.1f}   min {xs[0]:10.1f}   max {xs[-1]:10.1f}   n {len(xs)}", flush=True)


def measure(a, cmd, log: str, label: str = "") -> list:
    """--runs runs of `cmd`, their figures shown."""
    results = [timed(cmd, log) for _ in range(a.runs)]
    show(label or "run", results)
    return results


def runs(a, cmd, log: str) -> list:
    """The first run of each kind of diff, then the measured runs (A B A B when both); returns
    the kinds run. `cmd(diff)`: the command of one run, appending its output to `log`."""
    kinds = [a.only] if a.only else ["warehouse", "local"]
    for diff in kinds if not a.again else []:
        print(f"\n## first run, diff = {diff} (every row sent)", flush=True)
        show(diff, [timed(cmd(diff), log)])
    print("\n## measured runs (1% changed each)", flush=True)
    results = {diff: [] for diff in kinds}
    for _ in range(a.runs):
        for diff in kinds:
            results[diff].append(timed(cmd(diff), log))
    for diff in kinds:
        show(diff, results[diff])
    if len(kinds) == 2:
        ratios = sorted(w["wall s"] / l["wall s"] for w, l in zip(results["warehouse"], results["local"]))
        print(f"warehouse/local wall, pair by pair: median {ratios[len(ratios) // 2]:.2f} (min {ratios[0]:.2f}, max {ratios[-1]:.2f})")
    return kinds


def run_cmd(tick: str, sluice: str, root: str, log: str):
    """`cmd(diff)` for `runs`: `tick` (1% of the model changes), then one run of the sync."""
    return lambda diff: ["sh", "-c", f"{tick} && exec {sluice} run big_{diff} --project {root} >> {log} 2>&1"]


def query_alone(a, sluice: str, root: str, log: str, begin: str, client: str, name: str) -> None:
    """The warehouse diff's query as sluice logs it at -vv, timed on the database alone: `begin`
    (the session settings sluice pins, a read-only transaction) then the query, written to a
    file that `client` (a shell command) reads from stdin."""
    vv = subprocess.run([sluice, "plan", "big_warehouse", "--project", root, "-vv"], capture_output=True, text=True).stderr
    m = re.search(r'sql=(WITH sluice_m.*?sluice_m AS z ON FALSE)', vv, re.S)
    if not m:
        print("could not find the diff query in the -vv log", file=sys.stderr)
        return
    path = os.path.join(root, "diff.sql")
    with open(path, "w") as f:
        f.write(f"{begin}{m.group(1)};\nROLLBACK;\n")
    print(f"\n## the warehouse diff's query alone, on the database ({name}, output discarded)", flush=True)
    measure(a, ["sh", "-c", f"{client} < {path} > /dev/null 2>> {log}"], log, "query")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency", type=float, default=20.0, help="the webhook's answer time, ms")
    ap.add_argument("--only", choices=["warehouse", "local"])
    ap.add_argument("--keep", help="keep the project in this directory")
    ap.add_argument("--again", action="store_true",
                    help="DuckDB only: the --keep project's first runs are done; measure the runs after them")
    ap.add_argument("--source", choices=["postgres", "duckdb", "mysql"], default="postgres")
    ap.add_argument("--memory-limit", default="256MB", help="the DuckDB source's memory_limit")
    a = ap.parse_args()
    sluice = os.path.abspath(a.sluice)
    root = a.keep or tempfile.mkdtemp(prefix="sluice-bench-wh-")
    if a.again and (a.source != "duckdb" or not a.keep):
        sys.exit("--again takes a --keep project of --source duckdb")
    # Again: the same port, or the webhook would be another destination (a full resync).
    port = int(re.search(r'url = "http://127.0.0.1:(\d+)/hook"', open(os.path.join(root, "sluice.toml")).read())[1]) if a.again else 0
    sink = Sink(a.latency, port)
    project(root, sink.url, a.source, a.rows, a.memory_limit)
    print(f"# {a.rows:,} rows from {a.source}, 1% changed per run, webhook answering after {a.latency:g} ms; project {root}",
          flush=True)
    if a.source == "duckdb":
        return duckdb_bench(a, sluice, root)
    if a.source == "mysql":
        return mysql_bench(a, sluice, root)
    psql("postgres", f"DROP DATABASE IF EXISTS {DB}")
    psql("postgres", f"CREATE DATABASE {DB}")
    try:
        started = time.time()
        psql(DB, "CREATE TABLE tick (n int); INSERT INTO tick VALUES (0);")
        psql(DB, f"CREATE TABLE big AS SELECT i::bigint AS id, md5(i::text) || '@example.com' AS email, (i % 7)::int AS plan "
                 f"FROM generate_series(1, {a.rows}) i; ALTER TABLE big ADD PRIMARY KEY (id);")
        psql(DB, "VACUUM ANALYZE big")
        print(f"generated in {time.time() - started:.1f} s", flush=True)
        tick = f"psql {db_url(DB)} -X -q -c 'UPDATE tick SET n = n + 1'"
        log = f"{root}/runs.log"
        if "warehouse" in runs(a, run_cmd(tick, sluice, root, log), log):
            begin = "BEGIN READ ONLY;\nSET LOCAL TimeZone = 'UTC';\nSET LOCAL extra_float_digits = 2;\n"
            query_alone(a, sluice, root, log, begin, f"psql {db_url(DB)} -X -q", "psql")
        print(f"\nsluice_state table: {psql(DB, 'SELECT count(*) FROM sluice_state.big_warehouse')} rows, "
              f"{psql(DB, 'SELECT pg_size_pretty(pg_total_relation_size(' + chr(39) + 'sluice_state.big_warehouse' + chr(39) + '))')}")
    finally:
        psql("postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def duckdb_bench(a, sluice: str, root: str) -> int:
    try:
        tick = f"printf 'n\\n%s\\n' $(date +%s%N) > {root}/tick.csv"
        log = f"{root}/runs.log"
        if "warehouse" in runs(a, run_cmd(tick, sluice, root, log), log):
            print("\n## the warehouse diff's query alone: a plan (the same query in sluice's process, nothing sent)", flush=True)
            plan = ["sh", "-c", f"{tick} && exec {sluice} plan big_warehouse --project {root} >> {log} 2>&1"]
            measure(a, plan, log, "plan")
        state = os.path.join(root, ".sluice", "warehouse", "pg", "big_warehouse.duckdb")
        if os.path.exists(state):
            print(f"\nsync's DuckDB file: {os.path.getsize(state) / 2**20:.1f} MiB")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def mysql_bench(a, sluice: str, root: str) -> int:
    """As Postgres: the table generated in MariaDB (its `seq_1_to_N` sequence table), the query
    alone run by the mariadb client in a read-only transaction at the session settings sluice
    pins (time_zone +00:00)."""
    mysql("", f"DROP DATABASE IF EXISTS {DB}; DROP DATABASE IF EXISTS {DB}_state; CREATE DATABASE {DB}")
    try:
        started = time.time()
        mysql(DB, "CREATE TABLE tick (n int); INSERT INTO tick VALUES (0);")
        mysql(DB, "CREATE TABLE big (id bigint PRIMARY KEY, email varchar(64), plan int) ENGINE=InnoDB;")
        step = 1_000_000
        for lo in range(1, a.rows + 1, step):
            hi = min(lo + step - 1, a.rows)
            mysql(DB, f"INSERT INTO big SELECT seq, CONCAT(MD5(seq), '@example.com'), seq % 7 FROM seq_{lo}_to_{hi}")
        mysql(DB, "ANALYZE TABLE big")
        print(f"generated in {time.time() - started:.1f} s", flush=True)
        client = f"MYSQL_PWD='{urllib.parse.unquote(MY.password or '')}' {' '.join(my_args(DB))}"
        log = f"{root}/runs.log"
        if "warehouse" in runs(a, run_cmd(f"{client} -e 'UPDATE tick SET n = n + 1'", sluice, root, log), log):
            query_alone(a, sluice, root, log, "SET time_zone = '+00:00';\nSTART TRANSACTION READ ONLY;\n", client, "mariadb client")
        size = mysql("", f"SELECT CONCAT(TABLE_ROWS, ' rows (estimated), ', ROUND((DATA_LENGTH + INDEX_LENGTH) / 1048576), ' MiB') "
                         f"FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}_state' AND TABLE_NAME = 'big_warehouse'")
        print(f"\nsluice_state table: {size}")
    finally:
        mysql("", f"DROP DATABASE IF EXISTS {DB}; DROP DATABASE IF EXISTS {DB}_state")
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
