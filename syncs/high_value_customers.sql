/* sluice
schedule    = "@hourly"
source      = "local"
destination = "out"
primary_key = "customer_id"
mode        = "mirror"

[target]
path = "out/high_value_customers.csv"

[mapping]
"Customer ID"    = "customer_id"
"Email"          = "email"
"Lifetime value" = "ltv"
"Orders"         = "orders"
*/
SELECT c.id AS customer_id,
       c.email,
       round(sum(o.total), 2) AS ltv,
       count(*) AS orders
FROM read_csv('data/customers.csv') c
JOIN read_csv('data/orders.csv') o ON o.customer_id = c.id
GROUP BY c.id, c.email
HAVING sum(o.total) >= 500
ORDER BY c.id;
