/* sluice
source = "warehouse"
destination = "notion"
primary_key = "customer_id"
mode = "mirror"
schedule = "*/15 * * * *"
[target]
database_id  = "8e2c1b4a-5f6d-4e3a-9b2c-1d0e9f8a7b6c"   # your database's id (from its URL)
key_property = "Customer ID"
[mapping]
"Name"   = "name"
"Email"  = "email"
"Plan"   = "plan"
"MRR"    = "mrr"
"Renews" = "renews_on"
*/
SELECT customer_id, name, email, plan, CAST(mrr AS DOUBLE) AS mrr, renews_on
FROM read_csv('data/customers.csv')
