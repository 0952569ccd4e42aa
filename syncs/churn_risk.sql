/* sluice
schedule    = "0 7 * * *"
source      = "local"
destination = "out"
primary_key = "customer_id"
mode        = "upsert"

[target]
path = "out/churn_risk.jsonl"
*/
-- Scores a notebook wrote to data/churn_scores.csv, joined to the customer list.
SELECT s.customer_id,
       c.email,
       c.plan,
       s.churn_risk,
       s.scored_at
FROM read_csv('data/churn_scores.csv') s
JOIN read_csv('data/customers.csv') c ON c.id = s.customer_id
WHERE s.churn_risk >= 0.5;
