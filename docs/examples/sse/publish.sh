curl http://127.0.0.1:8000/rooms/lobby/messages -H 'content-type: application/json' \
  -d '{"id": "1", "room_id": "lobby", "text": "hi"}'
