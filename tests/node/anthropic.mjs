// Runs one streamed turn through the real `@anthropic-ai/sdk` against a running server.
//
// Reads one JSON job on stdin, writes one JSON result on stdout.
//   {"baseURL": "http://127.0.0.1:PORT", "apiKey": "...", "request": {model, max_tokens, ...}}
//     -> {events, text, partialJson, inputs, message}: `client.messages.stream(request)`,
//        the type of every stream event the SDK yields (`message_start`, `content_block_delta`,
//        ...), the text deltas, the `inputJson` partial pieces of tool inputs, the SDK's parsed
//        input snapshots, and `finalMessage()` (content, stop_reason, usage).
//   On an error: {error: {name, status, message}} (the SDK's error class and status).
import Anthropic from '@anthropic-ai/sdk';

const input = JSON.parse(await new Promise(resolve => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', d => (text += d));
  process.stdin.on('end', () => resolve(text));
}));

const client = new Anthropic({ baseURL: input.baseURL, apiKey: input.apiKey, maxRetries: 0 });
const result = { events: [], text: '', partialJson: [], inputs: [] };
try {
  const stream = client.messages.stream(input.request);
  stream.on('text', delta => (result.text += delta));
  stream.on('inputJson', (partial, snapshot) => {
    result.partialJson.push(partial);
    result.inputs.push(snapshot);
  });
  stream.on('streamEvent', event => result.events.push(event.type));
  result.message = await stream.finalMessage();
} catch (error) {
  result.error = { name: error.constructor.name, status: error.status ?? null, message: String(error.message) };
}
process.stdout.write(JSON.stringify(result));
