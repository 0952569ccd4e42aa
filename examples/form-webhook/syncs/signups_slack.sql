/* sluice
source = "stream:signups"
trigger = "on_event"
destination = "team"
primary_key = "response_id"
mode = "insert"                     # one message per response
[target]
text = "New signup: {{ name }} from {{ company }} ({{ seats }} seats)"
*/
WITH answers AS (
    SELECT id, unnest(CAST(payload->'$.form_response.answers' AS JSON[])) AS answer
    FROM events
    WHERE payload->>'$.event_type' = 'form_response'
)
SELECT id AS response_id,
       max(answer->>'$.text') FILTER (WHERE answer->>'$.field.ref' = 'name') AS name,
       max(answer->>'$.text') FILTER (WHERE answer->>'$.field.ref' = 'company') AS company,
       max(CAST(answer->>'$.number' AS INTEGER)) FILTER (WHERE answer->>'$.field.ref' = 'seats') AS seats
FROM answers
GROUP BY id
