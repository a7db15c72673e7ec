/**
 * Test doubles for the widget tests: a model as anywidget's host keeps it, and the
 * payloads and messages the kernel would send. Not part of the bundle.
 */
import type { Model, Traits } from "./widget";
import type { Json, Payload, Row, RowAction } from "./protocol";

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

  constructor(payload: unknown, snapshotId = "", functions: string[] = []) {
    this.#traits = { payload, functions, snapshot_id: snapshotId };
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

/** The row actions of a runs view, as the kernel describes them. */
export const RUN_ACTIONS: RowAction[] = [
  {
    name: "cancel",
    label: "Cancel",
    column: "id",
    arg: "run_id",
    when: { column: "status", in: ["queued", "running", "sleeping", "waiting"] },
  },
  {
    name: "retry",
    label: "Retry",
    column: "id",
    arg: "run_id",
    when: { column: "status", in: ["failed", "cancelled"] },
  },
];

export const RUN_COLUMNS = ["id", "status", "cancel_requested", "progress", "elapsed", "created_at"];

/** A runs view: key `id`, formats on status, progress, elapsed and created_at, and `RUN_ACTIONS`. */
export function runsPayload(rows: Row[], extra: Partial<Payload> = {}): Payload {
  return tablePayload(rows, {
    title: "runs()",
    columns: RUN_COLUMNS,
    actions: RUN_ACTIONS,
    formats: { status: "status", progress: "progress", elapsed: "elapsed", created_at: "time" },
    ...extra,
  });
}

/** A run's row in `RUN_COLUMNS` order; started and finished in epoch seconds. */
export function runRow(
  id: string,
  status: string,
  fields: {
    cancel?: boolean;
    progress?: Json;
    started?: number | null;
    finished?: number | null;
    created?: number;
  } = {},
): Row {
  return [
    id,
    status,
    fields.cancel ?? false,
    fields.progress ?? null,
    [fields.started ?? null, fields.finished ?? null],
    fields.created ?? null,
  ];
}
