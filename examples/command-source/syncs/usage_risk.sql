/* sluice
source = "scores"
destination = "at_risk"
primary_key = "customer_id"
mode = "mirror"
[target]
path = "out/usage_risk.jsonl"
*/
SELECT customer_id, email, churn_risk FROM input WHERE churn_risk > 0.5
