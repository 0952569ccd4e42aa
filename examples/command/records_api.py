#!/usr/bin/env python3
"""A sluice command destination in Python (standard library only).

Keeps the records of a small REST API equal to the synced rows: PUT /records/{key} with the
row's fields for upserts, DELETE /records/{key} for mirror removals. The API's record id is
reported back and stored by sluice.

    [destinations.records]
    kind    = "command"
    command = ["python3", "examples/command/records_api.py"]
    env     = { RECORDS_URL = "${RECORDS_URL}", RECORDS_TOKEN = "${RECORDS_TOKEN}" }

sluice starts this program once per run, writes one JSON line per row on stdin and reads one
JSON result line per row from stdout (docs/custom-destinations.md). stderr goes to sluice's log.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

BASE = os.environ["RECORDS_URL"].rstrip("/")
TOKEN = os.environ.get("RECORDS_TOKEN", "")


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        BASE + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
        return json.loads(text) if text else {}


def write(row):
    """Carries out one row; returns what to add to its result."""
    key = "-".join(str(v) for v in row["key"].values())
    path = "/records/" + urllib.parse.quote(key, safe="")
    if row["op"] == "delete":
        try:
            call("DELETE", path)
        except urllib.error.HTTPError as e:
            if e.code != 404:  # already gone counts as deleted
                raise
        return {}
    record = call("PUT", path, {"fields": row["fields"]})
    return {"destination_id": record.get("id")}


rows = failed = 0
for line in sys.stdin:
    row = json.loads(line)
    result = {"key": row["key"]}
    try:
        result.update(ok=True, **write(row))
    except urllib.error.HTTPError as e:
        # 4xx: the API refused this row's data (sluice holds it until it changes);
        # 429 and 5xx: worth another try.
        detail = e.read().decode(errors="replace")[:200]
        result.update(ok=False, retry=e.code == 429 or e.code >= 500, error=f"HTTP {e.code}: {detail}")
    except (urllib.error.URLError, TimeoutError) as e:
        result.update(ok=False, retry=True, error=str(e))
    rows += 1
    failed += not result["ok"]
    # One line per row, flushed at once: sluice waits for it.
    print(json.dumps(result), flush=True)

print(f"records_api.py: {rows} row(s), {failed} failed", file=sys.stderr)
