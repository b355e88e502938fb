// A small app built with `@ai-sdk/react`'s `useChat({ resume: true })` against mianzhang's AI
// SDK routes, bundled by the browser test with esbuild (tests/e2e/test_ai_sdk_browser.py).
// It is the recipe of docs/ai-frontends.md: `DefaultChatTransport` pointed at `/v1/ui/chat`,
// the chat's saved messages loaded from `GET /v1/chats/{id}` before `useChat` mounts (so a
// reload shows the conversation and `resume: true` continues the running answer), and a Stop
// button calling the stop endpoint (`useChat`'s own `stop()` only closes this tab's fetch),
// and the server's live progress (`data-progress` parts, through `onData`) while it writes.
//
// Test hooks: #app[data-status], article[data-role][data-id], [data-part=text], #prompt,
// #send, #stop, #progress[data-tokens]. The chat id comes from the page's `#chat=<id>`.
import { useChat } from '@ai-sdk/react';
import { DefaultChatTransport } from 'ai';
import { useState } from 'react';
import { createRoot } from 'react-dom/client';

const API = '/v1/ui/chat';
const chatId = new URLSearchParams(location.hash.slice(1)).get('chat') ?? 'browser-chat';
const transport = new DefaultChatTransport({ api: API, body: { model: 'scripted' } });

function Message({ message }) {
  return (
    <article data-role={message.role} data-id={message.id}>
      <strong>{message.role === 'user' ? 'You' : 'Answer'}</strong>
      {message.parts.map((part, i) =>
        part.type === 'text' ? <p key={i} data-part="text">{part.text}</p> : null,
      )}
      {message.metadata?.status === 'stopped' ? <em data-marker="stopped">Stopped</em> : null}
    </article>
  );
}

function Chat({ initialMessages }) {
  const [progress, setProgress] = useState(null);
  const { messages, sendMessage, status, error } = useChat({
    id: chatId,
    messages: initialMessages,
    transport,
    resume: true,
    onData: part => {
      if (part.type === 'data-progress') setProgress(part.data);
    },
  });
  const [input, setInput] = useState('');
  const busy = status === 'submitted' || status === 'streaming';
  const stop = () => fetch(`${API}/${encodeURIComponent(chatId)}/stop`, { method: 'POST' });
  const submit = event => {
    event.preventDefault();
    if (!input.trim() || busy) return;
    setProgress(null);
    sendMessage({ text: input });
    setInput('');
  };
  return (
    <main id="app" data-status={status}>
      {messages.map(m => <Message key={m.id} message={m} />)}
      {busy && progress ? (
        <small id="progress" data-tokens={progress.outputTokens}>
          {progress.outputTokens} tokens · {progress.tokensPerSecond?.toFixed(1) ?? '…'} tok/s
        </small>
      ) : null}
      {error ? <p role="alert">{error.message}</p> : null}
      <form onSubmit={submit}>
        <input id="prompt" aria-label="Message" value={input} onChange={e => setInput(e.target.value)} />
        <button id="send" type="submit" disabled={busy}>Send</button>
        <button id="stop" type="button" onClick={stop} disabled={!busy}>Stop</button>
      </form>
    </main>
  );
}

async function saved() {
  const response = await fetch(`/v1/chats/${encodeURIComponent(chatId)}`);
  return response.ok ? (await response.json()).messages : [];
}

createRoot(document.getElementById('root')).render(<Chat initialMessages={await saved()} />);
