/* sluice
source = "warehouse"
destination = "crm"
primary_key = "customer_id"
mode = "upsert"
schedule = "*/15 * * * *"
[target]
object      = "contacts"
id_property = "email"
[mapping]
email       = "email"
firstname   = "first_name"
customer_id = "customer_id"
score       = "churn_risk"
*/
SELECT customer_id, email, split_part(name, ' ', 1) AS first_name, churn_risk
FROM read_csv('data/customers.csv')
