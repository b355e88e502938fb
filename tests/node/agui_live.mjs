// Drives the real `@ag-ui/client` `HttpAgent` (Node's fetch) against a running mianzhang
// server's AG-UI route.
//
// Reads one JSON job on stdin: {"url": "<server>/v1/agui", "threadId", "runId", "text",
// "tools": [...], "forwardedProps": {...}, "headers": {...}, "cut": N | null}.
// Writes {runs: [{events, raw, error}], messages, requests, unhandled}: `events` are what the agent's
// subscriber saw, `raw` the SSE events as they came over the wire ({id, data}), `messages`
// the agent's messages at the end.
// With "cut": N the first connection fails like a dropped network after N SSE events; the
// agent (a small `HttpAgent` subclass) then runs again, resuming with
// `GET {url}/{threadId}/runs/{runId}?after=<events applied to its messages>` (`applied`), or
// with "resumeBy": "id" after the SSE id of the last event applied (`Last-Event-ID`).
import { HttpAgent, runHttpRequest, transformHttpEventStream } from '@ag-ui/client';

const input = JSON.parse(await new Promise(resolve => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', d => (text += d));
  process.stdin.on('end', () => resolve(text));
}));

// The resuming client: AG-UI has no resume, so `run` GETs the continuation when asked to.
// With `resumeId` set it resumes after that SSE id (`Last-Event-ID`) instead of a count.
class ResumingAgent extends HttpAgent {
  run(runInput) {
    if (this.resumeAfter == null) return super.run(runInput);
    const thread = encodeURIComponent(runInput.threadId);
    const run = encodeURIComponent(runInput.runId);
    const byId = this.resumeId != null;
    const url = `${this.url}/${thread}/runs/${run}${byId ? '' : `?after=${this.resumeAfter}`}`;
    const headers = { ...this.headers, Accept: 'text/event-stream' };
    if (byId) headers['Last-Event-ID'] = this.resumeId;
    const init = { method: 'GET', headers, signal: this.abortController.signal };
    return transformHttpEventStream(runHttpRequest(() => this.fetch(url, init)));
  }
}

// Records the SSE events of a body ({id, data}) and fails it like a dropped network after
// `cut` events (the real connection is closed).
function recorded(response, raw, cut) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let pending = '';
  let count = 0;
  const body = new ReadableStream({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      pending += decoder.decode(value, { stream: true });
      let at;
      while ((at = pending.indexOf('\n\n')) >= 0) {
        const block = pending.slice(0, at + 2);
        pending = pending.slice(at + 2);
        const lines = block.split('\n');
        const id = lines.find(l => l.startsWith('id: '))?.slice(4) ?? null;
        const data = lines.filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('\n');
        if (data) raw.push({ id, data });
        controller.enqueue(encoder.encode(block));
        count += 1;
        if (cut != null && count >= cut) {
          await reader.cancel();
          controller.error(new TypeError('network error'));
          return;
        }
      }
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
}

// `HttpAgent` leaves the transport's error of a dropped connection unhandled as well as
// rejecting `runAgent` with it: recorded here (the test checks it is only that error).
const unhandled = [];
process.on('unhandledRejection', reason => unhandled.push(String(reason?.message ?? reason)));

const requests = [];
let raw = [];
let cutNext = input.cut ?? null;
const agent = new ResumingAgent({
  url: input.url,
  headers: input.headers ?? {},
  threadId: input.threadId,
  initialMessages: [{ id: 'user-1', role: 'user', content: input.text }],
  fetch: async (url, init) => {
    requests.push({ method: init.method, url: String(url) });
    const response = await fetch(url, init);
    if (!response.ok) return response;
    const cut = cutNext;
    cutNext = null;
    return recorded(response, raw, cut);
  },
});

// How far to resume from: `HttpAgent` calls `onEvent` before it applies the event to its
// messages, and a failing connection discards the changes still being applied. So the count
// sent is that of the events whose changes reached `agent.messages` (`onMessagesChanged`
// follows each applied change); events after it that changed nothing are sent again, which
// changes nothing either.
const runs = [];
async function runOnce() {
  const events = [];
  let applied = 0;
  raw = [];
  let error = null;
  try {
    await agent.runAgent(
      {
        runId: input.runId,
        tools: input.tools ?? [],
        forwardedProps: input.forwardedProps ?? {},
      },
      {
        onEvent: ({ event }) => { events.push(event); },
        onMessagesChanged: () => { applied = events.length; },
      },
    );
  } catch (e) {
    error = String(e.message ?? e);
  }
  runs.push({ events, raw, error, applied });
  return applied;
}

const applied = await runOnce();
if (input.cut != null) {
  agent.resumeAfter = applied;
  // by id: the SSE id of the last event applied (its wire events came in the same order)
  if (input.resumeBy === 'id' && applied > 0) agent.resumeId = runs[0].raw[applied - 1].id;
  await runOnce();
}
const messages = structuredClone(agent.messages);
process.stdout.write(JSON.stringify({ runs, messages, requests, unhandled }));
