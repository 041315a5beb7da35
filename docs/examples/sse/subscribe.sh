curl -N http://127.0.0.1:8000/graphql \
  -H 'accept: text/event-stream' -H 'authorization: Bearer ann-token' \
  -H 'content-type: application/json' \
  -d '{"query": "subscription { messagePosted(roomId: \"lobby\") { id text } }"}'
