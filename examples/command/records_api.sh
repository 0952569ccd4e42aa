#!/bin/sh
# A sluice command destination in shell, with curl and jq: the same REST API as
# records_api.py (PUT /records/{key} with the row's fields, DELETE /records/{key}).
#
#   [destinations.records]
#   kind    = "command"
#   command = ["sh", "examples/command/records_api.sh"]
#   env     = { RECORDS_URL = "${RECORDS_URL}", RECORDS_TOKEN = "${RECORDS_TOKEN}" }
#
# One JSON line per row comes in on stdin; one JSON result line per row goes out on stdout.
set -u
body=$(mktemp)
trap 'rm -f "$body"' EXIT

while IFS= read -r line; do
  key=$(printf '%s' "$line" | jq -c '.key')
  path=$(printf '%s' "$line" | jq -r '[.key[] | tostring] | join("-") | @uri')
  op=$(printf '%s' "$line" | jq -r '.op')
  if [ "$op" = delete ]; then
    status=$(curl -s -o "$body" -w '%{http_code}' -X DELETE \
      -H "Authorization: Bearer ${RECORDS_TOKEN:-}" "$RECORDS_URL/records/$path")
    [ "$status" = 404 ] && status=204 # already gone counts as deleted
  else
    status=$(printf '%s' "$line" | jq -c '{fields: .fields}' | curl -s -o "$body" -w '%{http_code}' -X PUT \
      -H "Authorization: Bearer ${RECORDS_TOKEN:-}" -H 'Content-Type: application/json' \
      --data-binary @- "$RECORDS_URL/records/$path")
  fi
  case "$status" in
    2??) jq -cn --argjson key "$key" --arg id "$(jq -r '.id // empty' "$body" 2>/dev/null)" \
           '{key: $key, ok: true} + (if $id == "" then {} else {destination_id: $id} end)' ;;
    # No answer (000), throttled or a server error: worth another try.
    000|429|5??) jq -cn --argjson key "$key" --arg e "HTTP $status" '{key: $key, ok: false, retry: true, error: $e}' ;;
    # Any other 4xx: the API refused this row's data.
    *) jq -cn --argjson key "$key" --arg e "HTTP $status: $(head -c 200 "$body")" \
         '{key: $key, ok: false, retry: false, error: $e}' ;;
  esac
done
