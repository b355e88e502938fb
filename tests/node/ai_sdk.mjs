// Runs SSE bodies written by our encoders through the real `ai` package, with no server:
// `DefaultChatTransport` is given a `fetch` that answers with the body, so the transport's own
// SSE parsing and chunk schema (`uiMessageChunkSchema`) and the SDK's message building run.
//
// Reads one JSON job on stdin, writes one JSON result on stdout.
//   {"mode": "read", "sse": "..."}
//     -> {chunks, message, errors}: `readUIMessageStream` over the transport's chunks.
//   {"mode": "chat", "messages": [...], "text": "..." | null, "post": "...", "cut": N | null,
//    "resume": "..." | null, "resumeStatus": 200 | 204}
//     -> {afterPost, messages, status, error, errors, requests, data}: an `AbstractChat` (what
//        `useChat` wraps) starts with `messages` (as after a page reload) and sends `text`
//        (if any); the POST answers `post`, cut after its first `cut` SSE events with a network
//        error (as a dropped connection); then `chat.resumeStream()` GETs `{api}/{id}/stream`
//        (as `useChat({resume: true})` does on mount), answered by `resume` or a 204.
//        `requests` are the requests the transport made, with their JSON bodies; `data` the
//        data parts the chat handed to `onData`, in order (`useChat({ onData })`).
//        With "followUp": {"toolOutput": {tool, toolCallId, output}, "text", "post"} the chat
//        then adds the tool's output (`addToolOutput`) and sends `text`, answered by `post`.
import { DefaultChatTransport, readUIMessageStream } from 'ai';
import { Chat } from './_chat.mjs';

const input = JSON.parse(await new Promise(resolve => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', d => (text += d));
  process.stdin.on('end', () => resolve(text));
}));

const HEADERS = {
  'content-type': 'text/event-stream',
  'x-vercel-ai-ui-message-stream': 'v1',
};

// A body that yields the SSE events of `sse` one by one; after `cut` events it fails like a
// dropped connection (fetch reports network failures as a TypeError).
function body(sse, cut) {
  const events = sse.split(/(?<=\n\n)/);
  let sent = 0;
  const encoder = new TextEncoder();
  return new ReadableStream({
    pull(controller) {
      if (cut != null && sent >= cut) {
        controller.error(new TypeError('network error'));
        return;
      }
      if (sent >= events.length) {
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(events[sent++]));
    },
  });
}

async function read({ sse }) {
  const transport = new DefaultChatTransport({
    api: 'http://test/api/chat',
    fetch: async () => new Response(body(sse, null), { headers: HEADERS }),
  });
  const stream = await transport.sendMessages({
    chatId: 'chat-1',
    messages: [],
    abortSignal: undefined,
    trigger: 'submit-message',
    messageId: undefined,
  });
  const [forChunks, forMessage] = stream.tee();
  const chunks = [];
  const errors = [];
  const collecting = (async () => {
    try {
      for await (const chunk of forChunks) chunks.push(chunk);
    } catch (error) {
      errors.push(`chunks: ${error.message}`);
    }
  })();
  let message = null;
  for await (const m of readUIMessageStream({
    stream: forMessage,
    onError: error => errors.push(String(error.message ?? error)),
  })) {
    message = m;
  }
  await collecting;
  return { chunks, message, errors };
}


async function chat({ messages, text, post, cut, resume, resumeStatus, followUp }) {
  const requests = [];
  const errors = [];
  const data = [];
  const fetch = async (url, init) => {
    requests.push({ method: init.method, url, body: init.body ? JSON.parse(init.body) : null });
    if (init.method === 'GET') {
      if (resumeStatus === 204) return new Response(null, { status: 204 });
      return new Response(body(resume, null), { headers: HEADERS });
    }
    const posts = requests.filter(r => r.method === 'POST').length;
    if (posts > 1) return new Response(body(followUp.post, null), { headers: HEADERS });
    return new Response(body(post, cut ?? null), { headers: HEADERS });
  };
  let counter = 0;
  const c = new Chat({
    id: 'chat-1',
    messages,
    generateId: () => `client-id-${++counter}`,
    transport: new DefaultChatTransport({ api: 'http://test/api/chat', fetch }),
    onError: error => errors.push(String(error.message ?? error)),
    onData: part => data.push(structuredClone(part)),
  });
  if (text != null) await c.sendMessage({ text });
  const afterPost = { status: c.status, messages: structuredClone(c.store.messages) };
  if (resume != null || resumeStatus === 204) await c.resumeStream();
  if (followUp != null) {
    await c.addToolOutput(followUp.toolOutput);
    await c.sendMessage({ text: followUp.text });
  }
  return {
    afterPost,
    messages: c.store.messages,
    status: c.status,
    error: c.store.error ? String(c.store.error.message) : null,
    errors,
    requests,
    data,
  };
}

const modes = { read, chat };
const result = await modes[input.mode](input);
process.stdout.write(JSON.stringify(result));
