/* sluice
source = "warehouse"
destination = "app_db"
primary_key = "customer_id"
mode = "mirror"
schedule = "*/15 * * * *"
[target]
table = "churn_scores"              # in the URL's default schema; created on the first run
*/
SELECT customer_id, email, plan, CAST(mrr AS DECIMAL(12,2)) AS mrr, churn_risk, renews_on
FROM read_csv('data/customers.csv')
