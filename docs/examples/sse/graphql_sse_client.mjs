// graphql-sse's client (npm install graphql-sse), in a browser or Node 18+:
//   node graphql_sse_client.mjs [URL] [distinct|single]
import { createClient } from 'graphql-sse';

const [url = 'http://127.0.0.1:8000/graphql', mode = 'distinct'] = process.argv.slice(2);

const client = createClient({
  url,
  singleConnection: mode === 'single', // false (the default): one stream per operation
  headers: { authorization: 'Bearer ann-token' }, // read by on_connect(None, request)
});

client.subscribe(
  {
    query: 'subscription ($room: String!) { messagePosted(roomId: $room) { id text } }',
    variables: { room: 'lobby' },
  },
  {
    next: (result) => console.log(JSON.stringify(result)),
    error: (error) => console.error('error', error),
    complete: () => console.log('complete'),
  },
);
