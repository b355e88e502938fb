// Runs SSE bodies written by our AG-UI encoder through the real `@ag-ui/client`, with no
// server: an `HttpAgent` is given a `fetch` that answers with the body, so the client's own SSE
// parsing, event verification (`verifyEvents`) and message building run.
//
// Reads one JSON job on stdin: {"sse": "..." | ["...", ...], "messages": [...initial messages],
// "tools": [...], "context": [...], "state": {...}, "forwardedProps": {...}, "threadId": "...",
// "runId": "..."}.
// Writes {events, messages, error, request}: the events the agent saw, its messages after the
// run, the run's error (if any) and the request `HttpAgent` sent (URL, headers, JSON body).
// With a list of bodies the same agent runs once per body (a dropped run, then its resume);
// `runs` then holds {events, messages, error} of each.
// {"cases": [job, ...]} runs each job with its own agent and writes {"results": [...]}.
import { HttpAgent } from '@ag-ui/client';

const input = JSON.parse(await new Promise(resolve => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', d => (text += d));
  process.stdin.on('end', () => resolve(text));
}));

async function runJob(job) {
  const bodies = Array.isArray(job.sse) ? job.sse : [job.sse];
  let request = null;
  let served = 0;
  const fetch = async (url, init) => {
    request = {
      url,
      method: init.method,
      headers: Object.fromEntries(new Headers(init.headers).entries()),
      body: JSON.parse(init.body),
    };
    return new Response(bodies[served++], { headers: { 'content-type': 'text/event-stream' } });
  };
  const agent = new HttpAgent({
    url: 'http://test/agui',
    fetch,
    threadId: job.threadId ?? 'thread-1',
    initialMessages: job.messages ?? [],
    initialState: job.state ?? {},
  });
  const runs = [];
  for (let i = 0; i < bodies.length; i++) {
    const events = [];
    let error = null;
    try {
      await agent.runAgent(
        {
          runId: job.runId ?? 'run-1',
          tools: job.tools ?? [],
          context: job.context ?? [],
          forwardedProps: job.forwardedProps ?? {},
        },
        { onEvent: ({ event }) => { events.push(event); } },
      );
    } catch (e) {
      error = String(e.message ?? e);
    }
    runs.push({ events, messages: structuredClone(agent.messages), error });
  }
  return { ...runs[runs.length - 1], runs, request };
}

const result = input.cases
  ? { results: await Promise.all(input.cases.map(runJob)) }
  : await runJob(input);
process.stdout.write(JSON.stringify(result));
