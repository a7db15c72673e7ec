/**
 * Test doubles for the widget tests: a model as anywidget's host keeps it, and the
 * payloads and messages the kernel would send. Not part of the bundle.
 */
import type { Model, Traits } from "./widget";
import type { Json, Payload, Row } from "./protocol";

/** The host's event handler type (`(...args: any[]) => void`). */
type Handler = Parameters<Model["on"]>[1];

/**
 * One widget model. Like anywidget, it hands out a fresh proxy object to `initialize`
 * and to every `render` (`proxy()`), all sharing the same traits and events.
 */
export class FakeModel {
  readonly sent: unknown[] = [];
  readonly #traits: Traits;
  readonly #handlers = new Map<string, Set<Handler>>();

  constructor(payload: unknown, snapshotId = "") {
    this.#traits = { payload, functions: [], snapshot_id: snapshotId };
  }

  proxy(): Model {
    return {
      get: (name) => this.#traits[name],
      set: (name, value) => {
        this.#traits[name] = value;
      },
      on: (name: string, handler: Handler) => {
        const set = this.#handlers.get(name) ?? new Set();
        set.add(handler);
        this.#handlers.set(name, set);
      },
      off: (name?: string | null, handler?: Handler | null) => {
        if (name != null && handler != null) this.#handlers.get(name)?.delete(handler);
      },
      save_changes: () => {},
      send: (content: unknown) => {
        this.sent.push(content);
      },
      widget_manager: {
        get_model: () => Promise.reject(new Error("no widget manager in tests")),
      },
    };
  }

  /** The kernel sends a custom message. */
  message(content: unknown): void {
    for (const handler of this.#handlers.get("msg:custom") ?? []) handler(content, []);
  }

  /** The kernel sets the `payload` trait. */
  setPayload(payload: unknown): void {
    this.#traits.payload = payload;
    for (const handler of this.#handlers.get("change:payload") ?? []) handler();
  }

  listenerCount(name: string): number {
    return this.#handlers.get(name)?.size ?? 0;
  }
}

/** A table payload with key column 0 unless told otherwise. */
export function tablePayload(rows: Row[], extra: Partial<Payload> = {}): Payload {
  return {
    version: 1,
    title: "messages(thread_id='t1')",
    kind: "table",
    error: null,
    columns: ["id", "role", "content"],
    key: [0],
    rows,
    text: "",
    value: null,
    ...extra,
  };
}

export function diff(
  base: number,
  parts: { removed?: Json[][]; changed?: Row[]; inserted?: [number, Row][] },
): unknown {
  return {
    type: "diff",
    base,
    version: base + 1,
    removed: parts.removed ?? [],
    changed: parts.changed ?? [],
    inserted: parts.inserted ?? [],
  };
}

/** Rows `[i, "user", "m<i>"]` for i in from..to-1. */
export function rowsBetween(from: number, to: number): Row[] {
  const rows: Row[] = [];
  for (let i = from; i < to; i++) rows.push([i, "user", `m${i}`]);
  return rows;
}
