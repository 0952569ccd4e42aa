/* sluice
source = "stream:signups"
trigger = "on_event"                # within `debounce` (1s) of a response
destination = "crm"
primary_key = "email"
mode = "upsert"                     # a second response from one person updates the contact
[target]
object      = "contacts"
id_property = "email"
[mapping]
email     = "email"
firstname = "first_name"
lastname  = "last_name"
company   = "company"
*/
-- Typeform sends the answers as a list, each naming its question by `field.ref`.
WITH answers AS (
    SELECT id, CAST(payload->>'$.form_response.submitted_at' AS TIMESTAMPTZ) AS submitted_at,
           unnest(CAST(payload->'$.form_response.answers' AS JSON[])) AS answer
    FROM events
    WHERE payload->>'$.event_type' = 'form_response'
), responses AS (
    SELECT id, any_value(submitted_at) AS submitted_at,
           lower(max(answer->>'$.email') FILTER (WHERE answer->>'$.field.ref' = 'email')) AS email,
           max(answer->>'$.text') FILTER (WHERE answer->>'$.field.ref' = 'name') AS name,
           max(answer->>'$.text') FILTER (WHERE answer->>'$.field.ref' = 'company') AS company
    FROM answers GROUP BY id
)
SELECT email, split_part(name, ' ', 1) AS first_name, nullif(split_part(name, ' ', 2), '') AS last_name, company
FROM responses
WHERE email IS NOT NULL
-- One row per person: their latest response among those this run reads.
QUALIFY row_number() OVER (PARTITION BY email ORDER BY submitted_at DESC, id DESC) = 1
