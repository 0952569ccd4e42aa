"""Membership data from Stripe, a churn score per customer (standard library only).

Pages GET /v1/customers (100 at a time, `starting_after` the last id, as Stripe's list API
pages), retries a 429 after a pause as Stripe advises, and prints one JSON object per line.
STRIPE_KEY is the secret key; STRIPE_API_BASE the API's address (https://api.stripe.com).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE = os.environ.get("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/")
KEY = os.environ.get("STRIPE_KEY") or sys.exit("STRIPE_KEY is not set: export your Stripe secret key before running this sync")


def get(path, params):
    url = f"{BASE}{path}?{urllib.parse.urlencode(params)}"
    for attempt in range(5):
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {KEY}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as e:
            if e.code == 429 and attempt < 4:
                time.sleep(0.2 * 2**attempt)
                continue
            body = e.read().decode(errors="replace")
            sys.exit(f"Stripe answered {e.code} for {path}: {body}")
    sys.exit("Stripe kept answering 429")


def churn_risk(customer, now):
    risk = 0.6 if customer.get("delinquent") else 0.0
    if customer.get("balance", 0) > 0:
        risk += 0.2
    age_days = (now - customer["created"]) / 86400
    if age_days < 30:
        risk += 0.2
    return round(min(risk, 1.0), 2)


def main():
    now = time.time()
    params = {"limit": 100}
    pages = 0
    while True:
        page = get("/v1/customers", params)
        pages += 1
        for c in page["data"]:
            print(json.dumps({"customer_id": c["id"], "email": c.get("email"), "churn_risk": churn_risk(c, now)}))
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    print(f"read {pages} page(s) of customers", file=sys.stderr)


if __name__ == "__main__":
    main()
