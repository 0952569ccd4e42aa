/* sluice
source = "warehouse"
destination = "risk_channel"
primary_key = "customer_id"
mode = "insert"                     # a message when a customer first crosses the line
schedule = "*/15 * * * *"
[target]
text = "{{ name }} ({{ plan }}, {{ mrr }}/month) has a churn risk of {{ churn_risk }}"
*/
SELECT customer_id, name, plan, mrr, churn_risk
FROM read_csv('data/customers.csv')
WHERE churn_risk > 0.7
