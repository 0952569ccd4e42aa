"""The analyst's scoring, as a plain Python script (standard library only): reads the usage
export, computes a churn risk per customer, prints one JSON object per line for sluice.

    python3 scripts/score_churn.py > scores.jsonl     # try it alone
"""
import csv
import json
import sys


def churn_risk(row):
    seats = max(int(row["seats"]), 1)
    idle_share = 1 - int(row["active_seats"]) / seats
    quiet = min(int(row["days_since_login"]) / 60, 1)
    support = min(int(row["tickets_90d"]) / 10, 1)
    return round(0.5 * idle_share + 0.3 * quiet + 0.2 * support, 3)


def main():
    with open("data/usage.csv", newline="") as f:
        for row in csv.DictReader(f):
            print(json.dumps({"customer_id": row["customer_id"], "email": row["email"], "churn_risk": churn_risk(row)}))
    # Logs go to stderr: sluice logs them, and shows the last lines if the script fails.
    print("scored usage.csv", file=sys.stderr)


if __name__ == "__main__":
    main()
