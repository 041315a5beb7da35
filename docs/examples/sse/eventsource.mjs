// A browser's EventSource (Node 20: node --experimental-eventsource eventsource.mjs [URL]).
// It sends cookies but no headers of yours: here it subscribes anonymously.
const url = new URL(process.argv[2] ?? 'http://127.0.0.1:8000/graphql');
url.searchParams.set('query', 'subscription { messagePosted(roomId: "lobby") { id text } }');
url.searchParams.set('extensions', JSON.stringify({ resume: true })); // an id: on each event

const source = new EventSource(url);
source.addEventListener('next', (event) => {
  // event.lastEventId is the cursor the browser sends back (Last-Event-ID) when it reconnects
  console.log(JSON.stringify({ id: event.lastEventId, result: JSON.parse(event.data) }));
});
source.addEventListener('complete', () => {
  console.log('complete');
  source.close(); // or EventSource reconnects, and subscribes again
});
