#!/usr/bin/env python3
"""Posts sample form responses to the daemon as Typeform does: the JSON body of a
`form_response` event, signed in `Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>`
with the webhook's secret (FORM_HMAC_SECRET), and named by its `event_id`.

    FORM_HMAC_SECRET=... python3 scripts/post_forms.py [--url http://127.0.0.1:9187] [FILE]

FILE (default data/responses.json) lists the respondents. Each response's event_id comes from the
respondent's email, so posting the same file again is Typeform retrying a delivery: the daemon
stores each once. Standard library only. Exit status 1 if any post was refused.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone


def response(person: dict) -> dict:
    """A Typeform `form_response` event (https://www.typeform.com/developers/webhooks/example-payload/)."""
    event_id = "01" + hashlib.sha256(person["email"].encode()).hexdigest()[:24].upper()
    answers = [
        {"type": "text", "text": person["name"], "field": {"id": "f1", "type": "short_text", "ref": "name"}},
        {"type": "email", "email": person["email"], "field": {"id": "f2", "type": "email", "ref": "email"}},
        {"type": "text", "text": person["company"], "field": {"id": "f3", "type": "short_text", "ref": "company"}},
        {"type": "number", "number": person["seats"], "field": {"id": "f4", "type": "number", "ref": "seats"}},
    ]
    return {
        "event_id": event_id,
        "event_type": "form_response",
        "form_response": {
            "form_id": "signup",
            "token": event_id.lower(),
            "submitted_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "answers": answers,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", "data", "responses.json"))
    parser.add_argument("--url", default=os.environ.get("SLUICE_URL", "http://127.0.0.1:9187"))
    args = parser.parse_args()
    secret = os.environ.get("FORM_HMAC_SECRET")
    if not secret:
        print("post_forms: set FORM_HMAC_SECRET to the stream's secret", file=sys.stderr)
        return 2
    with open(args.file, encoding="utf-8") as f:
        people = json.load(f)
    refused = 0
    for person in people:
        body = json.dumps(response(person)).encode()
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        request = urllib.request.Request(
            args.url.rstrip("/") + "/hooks/signups",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                print(f"{person['email']}: {answer.status} {answer.read().decode()}")
        except urllib.error.HTTPError as e:
            refused += 1
            print(f"{person['email']}: {e.code} {e.read().decode()}", file=sys.stderr)
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
