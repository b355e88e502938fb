// Drives the real `ai` package (`Chat` logic through `AbstractChat`, `DefaultChatTransport`
// with Node's real fetch) against a running mianzhang server.
//
// Reads one JSON job on stdin, writes one JSON result on stdout. Every job has `api` (the
// server's `/v1/ui/chat` URL), `chatId`, `text` (the user message, e.g. a script for the
// scripted model) and optionally `headers`.
// Every result also has `data`: the data parts the chat handed to `onData`, in order
// (`useChat({ onData })`).
//   {"mode": "turn"}
//     -> {messages, status, error, requests}: send `text`, wait for the answer.
//   {"mode": "cut", "cut": N, "resumeApi": URL | null}
//     -> {afterCut, messages, status, error, requests}: send `text`; after N SSE events of the
//        POST's body the connection fails like a dropped network (TypeError, the socket
//        closed); then `chat.resumeStream()` (`reconnectToStream`: GET
//        `{resumeApi or api}/{chatId}/stream`).
//   {"mode": "stop", "after": N, "stopUrl": URL, "readerApi": URL}
//     -> {messages, status, error, reader, stop}: send `text`; a second reader
//        (`reconnectToStream` on `readerApi`, e.g. another instance) follows the same answer;
//        after N events of the POST's body, `stopUrl` is POSTed (the stop endpoint). `reader`
//        is every chunk the second reader got; `stop` the stop endpoint's JSON.
//   {"mode": "resume-stop", "cut": N, "resumeApi": URL, "after": M, "stopUrl": URL}
//     -> as "cut", then after M events of the resumed (GET) body, `stopUrl` is POSTed.
import { DefaultChatTransport } from 'ai';
import { Chat } from './_chat.mjs';

const input = JSON.parse(await new Promise(resolve => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', d => (text += d));
  process.stdin.on('end', () => resolve(text));
}));


// A body that passes the response's bytes on and calls `onEvents(count)` as SSE events
// complete; `cut` (a count) makes it fail like a dropped network after that many events,
// closing the real connection.
function watched(response, { cut = null, onEvents = () => {} } = {}) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  let count = 0;
  let failed = false;
  const body = new ReadableStream({
    async pull(controller) {
      if (failed) return;
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      const text = decoder.decode(value, { stream: true });
      pending += text;
      let out = '';
      let at;
      while ((at = pending.indexOf('\n\n')) >= 0) {
        out += pending.slice(0, at + 2);
        pending = pending.slice(at + 2);
        count += 1;
        if (cut != null && count >= cut) {
          failed = true;
          controller.enqueue(new TextEncoder().encode(out));
          await reader.cancel();
          controller.error(new TypeError('network error'));
          return;
        }
        await onEvents(count);
      }
      if (out) controller.enqueue(new TextEncoder().encode(out));
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
}

function makeChat(job, { transport = {}, onPost = null, onGet = null } = {}) {
  const requests = [];
  const fetchImpl = async (url, init) => {
    requests.push({ method: init.method, url: String(url) });
    const response = await fetch(url, init);
    if (init.method === 'POST' && onPost) return onPost(response);
    if (init.method === 'GET' && onGet && response.status === 200) return onGet(response);
    return response;
  };
  let counter = 0;
  const errors = [];
  const data = [];
  const chat = new Chat({
    id: job.chatId,
    generateId: () => `client-${++counter}`,
    transport: new DefaultChatTransport({
      api: job.api,
      headers: job.headers ?? {},
      body: { model: 'scripted', ...(job.body ?? {}) },
      fetch: fetchImpl,
      ...transport,
    }),
    onError: error => errors.push(String(error.message ?? error)),
    onData: part => data.push(structuredClone(part)),
  });
  chat.data = data;
  return { chat, requests, errors };
}

function result(chat, extra = {}) {
  return {
    data: chat.data,
    messages: chat.store.messages,
    status: chat.status,
    error: chat.store.error ? String(chat.store.error.message) : null,
    ...extra,
  };
}

async function postStop(url, headers) {
  const response = await fetch(url, { method: 'POST', headers: headers ?? {} });
  return { status: response.status, body: await response.json() };
}

async function turn(job) {
  const { chat, requests } = makeChat(job);
  await chat.sendMessage({ text: job.text });
  return result(chat, { requests });
}

function resumeTransport(job) {
  if (!job.resumeApi) return {};
  return {
    prepareReconnectToStreamRequest: ({ id, headers }) => ({
      api: `${job.resumeApi}/${encodeURIComponent(id)}/stream`,
      headers,
    }),
  };
}

async function cut(job) {
  const { chat, requests } = makeChat(job, {
    transport: resumeTransport(job),
    onPost: response => watched(response, { cut: job.cut }),
  });
  await chat.sendMessage({ text: job.text });
  const afterCut = { status: chat.status, messages: structuredClone(chat.store.messages) };
  await chat.resumeStream();
  return result(chat, { afterCut, requests });
}

async function readAll(stream) {
  const chunks = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return chunks;
    chunks.push(value);
  }
}

async function stop(job) {
  let stopped = null;
  let readerDone = null;
  const second = new DefaultChatTransport({ api: job.readerApi, headers: job.headers ?? {} });
  const { chat, requests } = makeChat(job, {
    onPost: response => watched(response, {
      onEvents: async count => {
        if (count === 2 && readerDone == null) {
          const stream = await second.reconnectToStream({ chatId: job.chatId });
          readerDone = stream == null ? Promise.resolve(null) : readAll(stream);
        }
        if (count === job.after && stopped == null) stopped = postStop(job.stopUrl, job.headers);
      },
    }),
  });
  await chat.sendMessage({ text: job.text });
  return result(chat, { requests, stop: await stopped, reader: await readerDone });
}

async function resumeStop(job) {
  let stopped = null;
  const { chat, requests } = makeChat(job, {
    transport: resumeTransport(job),
    onPost: response => watched(response, { cut: job.cut }),
    onGet: response => watched(response, {
      onEvents: count => {
        if (count === job.after && stopped == null) stopped = postStop(job.stopUrl, job.headers);
      },
    }),
  });
  await chat.sendMessage({ text: job.text });
  const afterCut = { status: chat.status, messages: structuredClone(chat.store.messages) };
  await chat.resumeStream();
  return result(chat, { afterCut, requests, stop: await stopped });
}

const modes = { turn, cut, stop, 'resume-stop': resumeStop };
const output = await modes[input.mode](input);
process.stdout.write(JSON.stringify(output));
