// The `Chat` both AI SDK scripts drive: the real `AbstractChat` of the `ai` package (what
// `useChat` runs) over a plain in-memory state, whose messages the scripts read back as `store`.
import { AbstractChat } from 'ai';

class State {
  constructor(messages) {
    this.status = 'ready';
    this.error = undefined;
    this.messages = messages;
  }
  pushMessage(m) { this.messages = [...this.messages, m]; }
  popMessage() { this.messages = this.messages.slice(0, -1); }
  replaceMessage(i, m) { this.messages = this.messages.map((x, j) => (j === i ? m : x)); }
  snapshot(thing) { return structuredClone(thing); }
}

export class Chat extends AbstractChat {
  constructor({ messages, ...options }) {
    const state = new State(messages ?? []);
    super({ ...options, state });
    this.store = state;
  }
}
