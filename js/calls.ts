/**
 * One model's calls to bound functions: `call` out, `reply` back.
 *
 * Responsibilities:
 * - number each call with an id unique for the model, and send it;
 * - hand each `reply` to whoever made the call with that id, once; replies to calls
 *   made elsewhere (another window on the same kernel receives them too) are ignored.
 *
 * Ids start at a random integer: the kernel sends a reply to every page showing the
 * widget, and two pages counting from 1 would take each other's replies as their own.
 */
import { parseReply, type CallMessage, type Json, type Reply } from "./protocol";

export type ReplyHandler = (reply: Reply) => void;

/** What a view may do with its model's functions. */
export interface Caller {
  /** The names the model's `functions` trait lists: the only ones `call` may send. */
  readonly functions: ReadonlySet<string>;
  /** Call `fn`; `onReply` gets its reply. Returns a function that forgets the call. */
  call(fn: string, args: Record<string, Json>, onReply: ReplyHandler): () => void;
}

export class Calls implements Caller {
  readonly functions: ReadonlySet<string>;
  readonly #send: (content: CallMessage) => void;
  readonly #waiting = new Map<number, ReplyHandler>();
  #nextId = 1 + Math.floor(Math.random() * 2 ** 31);

  constructor(functions: unknown, send: (content: CallMessage) => void) {
    const names = Array.isArray(functions) ? functions.filter((name) => typeof name === "string") : [];
    this.functions = new Set(names);
    this.#send = send;
  }

  call(fn: string, args: Record<string, Json>, onReply: ReplyHandler): () => void {
    // The kernel drops a call to a name it did not bind; we never send one.
    if (!this.functions.has(fn)) throw new Error(`${fn} is not one of this widget's functions`);
    const id = this.#nextId++;
    this.#waiting.set(id, onReply);
    this.#send({ type: "call", id, fn, args });
    return () => this.#waiting.delete(id);
  }

  /** A custom message from the kernel; true if it answered one of our calls. */
  receive(message: unknown): boolean {
    const reply = parseReply(message);
    const handler = reply === null ? undefined : this.#waiting.get(reply.id);
    if (reply === null || handler === undefined) return false;
    this.#waiting.delete(reply.id);
    handler(reply);
    return true;
  }

  dispose(): void {
    this.#waiting.clear();
  }
}
