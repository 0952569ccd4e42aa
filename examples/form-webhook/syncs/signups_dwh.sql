/* sluice
source = "stream:signups"
trigger = "on_event"
destination = "dwh"
primary_key = "response_id"
mode = "insert"                     # every response, once
[target]
table = "form_signups"              # in the URL's default schema; created on the first run
*/
WITH answers AS (
    SELECT id, received_at, payload,
           unnest(CAST(payload->'$.form_response.answers' AS JSON[])) AS answer
    FROM events
    WHERE payload->>'$.event_type' = 'form_response'
)
SELECT id AS response_id,
       any_value(payload->>'$.form_response.form_id') AS form_id,
       CAST(any_value(payload->>'$.form_response.submitted_at') AS TIMESTAMPTZ) AS submitted_at,
       any_value(received_at) AS received_at,
       max(answer->>'$.email') FILTER (WHERE answer->>'$.field.ref' = 'email') AS email,
       max(answer->>'$.text') FILTER (WHERE answer->>'$.field.ref' = 'name') AS name,
       max(answer->>'$.text') FILTER (WHERE answer->>'$.field.ref' = 'company') AS company,
       max(CAST(answer->>'$.number' AS INTEGER)) FILTER (WHERE answer->>'$.field.ref' = 'seats') AS seats
FROM answers
GROUP BY id
