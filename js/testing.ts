/**
 * Test doubles for the widget tests: a model as anywidget's host keeps it, and the
 * payloads and messages the kernel would send. Not part of the bundle.
 */
import { Calls } from "./calls";
import type { CallMessage, ChatView, Json, Payload, Row, RowAction, TimelineView } from "./protocol";
import { LiveView } from "./render";
import type { Motion } from "./smooth";
import { LiveState } from "./state";
import type { Model, Traits } from "./widget";

/** The host's event handler type (`(...args: any[]) => void`). */
type Handler = Parameters<Model["on"]>[1];

/** A Lumino signal, as a kernel connection has them. */
export class FakeSignal<T> {
  readonly #slots = new Set<(sender: unknown, args: T) => void>();

  connect(slot: (sender: unknown, args: T) => void): boolean {
    if (this.#slots.has(slot)) return false;
    this.#slots.add(slot);
    return true;
  }

  disconnect(slot: (sender: unknown, args: T) => void): boolean {
    return this.#slots.delete(slot);
  }

  emit(args: T): void {
    for (const slot of [...this.#slots]) slot(this, args);
  }

  get slots(): number {
    return this.#slots.size;
  }
}

/** The kernel connection JupyterLab's widget manager holds (`widget_manager.kernel`). */
export class FakeKernel {
  isDisposed = false;
  status = "idle";
  readonly disposed = new FakeSignal<unknown>();
  readonly statusChanged = new FakeSignal<string>();

  setStatus(status: string): void {
    this.status = status;
    this.statusChanged.emit(status);
  }

  /** As a shutdown does: disposed, and then its status reads `unknown`. */
  dispose(): void {
    this.isDisposed = true;
    this.disposed.emit(undefined);
    this.status = "unknown";
  }
}

/**
 * One widget model. Like anywidget, it hands out a fresh proxy object to `initialize`
 * and to every `render` (`proxy()`), all sharing the same traits and events. Its widget
 * manager has `kernel` (null: a host without one, as in VS Code).
 */
export class FakeModel {
  readonly sent: unknown[] = [];
  kernel: FakeKernel | null = null;
  readonly #traits: Traits;
  readonly #handlers = new Map<string, Set<Handler>>();

  constructor(payload: unknown, snapshotId = "", functions: string[] = []) {
    this.#traits = { payload, functions, snapshot_id: snapshotId };
  }

  proxy(): Model {
    const manager = {
      get_model: () => Promise.reject(new Error("no widget manager in tests")),
      kernel: this.kernel,
    };
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
      widget_manager: manager,
    };
  }

  /** The host triggers `event` on the model (`comm_live_update`, `comm:close`). */
  trigger(event: string): void {
    for (const handler of [...(this.#handlers.get(event) ?? [])]) handler();
  }

  /** The kernel sends a custom message. */
  message(content: unknown): void {
    for (const handler of this.#handlers.get("msg:custom") ?? []) handler(content, []);
  }

  /**
   * The kernel answers the `resync` a page sends as it connects (state.ts, `confirming`)
   * with `current`, as a kernel that holds the same version does; what the page sent
   * so far is forgotten.
   */
  answerConnect(): void {
    const asked = this.sent.find((m) => (m as { type?: unknown }).type === "resync") as
      | { version: number }
      | undefined;
    if (asked !== undefined) this.message({ type: "current", version: asked.version });
    this.sent.length = 0;
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
  parts: { removed?: Json[][]; changed?: Row[]; appended?: [Json[], number, string][]; cells?: unknown[]; inserted?: [number, Row][] },
): unknown {
  return {
    type: "diff",
    base,
    version: base + 1,
    removed: parts.removed ?? [],
    changed: parts.changed ?? [],
    // Like the kernel, leave the part out when it is empty.
    ...(parts.appended === undefined ? {} : { appended: parts.appended }),
    ...(parts.cells === undefined ? {} : { cells: parts.cells }),
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

/** A clock and animation frames that only move when a test says so. */
export class FakeMotion implements Motion {
  time = 1000;
  reducedMotion = false;
  readonly #frames = new Map<number, () => void>();
  #next = 1;

  now(): number {
    return this.time;
  }

  requestFrame(callback: () => void): number {
    const handle = this.#next++;
    this.#frames.set(handle, callback);
    return handle;
  }

  cancelFrame(handle: number): void {
    this.#frames.delete(handle);
  }

  reduced(): boolean {
    return this.reducedMotion;
  }

  /** Frames requested and not yet run. */
  get pending(): number {
    return this.#frames.size;
  }

  /** Let `ms` pass, then run the frames requested until now (one animation frame). */
  frame(ms = 16): void {
    this.time += ms;
    const due = [...this.#frames.values()];
    this.#frames.clear();
    for (const callback of due) callback();
  }

  /** Run frames `ms` apart for `total` ms, or until none is requested. */
  run(total: number, ms = 16): void {
    for (let t = 0; t < total && this.pending > 0; t += ms) this.frame(ms);
  }
}

export const CHAT_COLUMNS = ["id", "role", "content", "status", "usage", "error"];

/** The `chat` field of a thread's messages in `CHAT_COLUMNS`. */
export const CHAT: ChatView = {
  text: "content",
  role: "role",
  status: "status",
  usage: "usage",
  error: "error",
  detail: null,
  note: null,
  send: { fn: "send", args: { thread_id: "t1" }, text_arg: "text" },
  cancel: { fn: "cancel", arg: "message_id" },
  placeholder: "Message",
};

/** A chat: key `id`, columns `CHAT_COLUMNS`, `chat` as `CHAT` unless told otherwise. */
export function chatPayload(rows: Row[], extra: Partial<Payload> = {}): Payload {
  return tablePayload(rows, { title: "chat(thread_id='t1')", columns: CHAT_COLUMNS, chat: CHAT, ...extra });
}

/** A message's row in `CHAT_COLUMNS` order. */
export function message(
  id: number,
  role: string,
  content: string,
  fields: { status?: string | null; usage?: Json; error?: string | null } = {},
): Row {
  const status = fields.status === undefined ? "done" : fields.status;
  return [id, role, content, status, fields.usage ?? null, fields.error ?? null];
}

export const TIMELINE_COLUMNS = [
  "run_id",
  "seq",
  "name",
  "kind",
  "status",
  "started_at",
  "finished_at",
  "attempts",
  "preview",
];

/** The `timeline` field of a workflow's journaled steps in `TIMELINE_COLUMNS`. */
export const TIMELINE: TimelineView = {
  run: "run_id",
  label: "name",
  seq: "seq",
  kind: "kind",
  status: "status",
  start: "started_at",
  end: "finished_at",
  attempts: "attempts",
  preview: "preview",
};

/** A step timeline: key `[run_id, seq]`, columns `TIMELINE_COLUMNS`, `timeline` as `TIMELINE`. */
export function timelinePayload(rows: Row[], extra: Partial<Payload> = {}): Payload {
  return tablePayload(rows, {
    title: "timeline(run_id='r1')",
    columns: TIMELINE_COLUMNS,
    key: [0, 1],
    timeline: TIMELINE,
    ...extra,
  });
}

/** A step's row in `TIMELINE_COLUMNS` order; start and end in epoch seconds. */
export function stepRow(
  run: string,
  seq: number,
  name: string,
  fields: {
    kind?: string;
    status?: string;
    start?: number | null;
    end?: number | null;
    attempts?: number;
    preview?: Json;
  } = {},
): Row {
  const end = fields.end === undefined ? null : fields.end;
  return [
    run,
    seq,
    name,
    fields.kind ?? "step",
    fields.status ?? (end === null ? "running" : "done"),
    fields.start === undefined ? 0 : fields.start,
    end,
    fields.attempts ?? 1,
    fields.preview ?? null,
  ];
}

/**
 * One model and one view, wired as widget.ts wires them, but with a clock and animation
 * frames the test drives (`motion`).
 */
export function mountView(payload: unknown, { functions = ["send", "cancel"], reduced = false } = {}) {
  const model = new FakeModel(payload, "", functions);
  const proxy = model.proxy();
  const motion = new FakeMotion();
  motion.reducedMotion = reduced;
  const state = new LiveState(proxy.get("payload"), (content) => proxy.send(content));
  const calls = new Calls(proxy.get("functions"), (content) => proxy.send(content));
  proxy.on("msg:custom", (content: unknown) => {
    if (!calls.receive(content)) state.receive(content);
  });
  const el = document.body.appendChild(document.createElement("div"));
  const view = new LiveView(el, calls, motion);
  view.update(state.payload, state.sync);
  state.subscribe((next, sync) => view.update(next, sync));
  const q = <E extends Element = HTMLElement>(selector: string): E => {
    const found = el.querySelector<E>(selector);
    if (found === null) throw new Error(`nothing matches ${selector}`);
    return found;
  };
  return { model, motion, el, view, q };
}

/** The `call` messages a model sent. */
export function sentCalls(model: FakeModel): CallMessage[] {
  return model.sent.filter((m): m is CallMessage => (m as { type?: unknown }).type === "call");
}

/** The kernel answers `call`: ok, or failed with a ValueError. */
export function replyTo(model: FakeModel, call: CallMessage, ok = true): void {
  model.message(
    ok
      ? { type: "reply", id: call.id, ok: true, result: null }
      : { type: "reply", id: call.id, ok: false, error: { type: "ValueError", message: "thread is closed" } },
  );
}

/** Type `value` into a chat's input. */
export function typeIn(el: HTMLElement, value: string): void {
  const input = el.querySelector<HTMLTextAreaElement>("textarea.rxnb-chat-input")!;
  input.value = value;
  input.dispatchEvent(new Event("input"));
}

/** Press a key (Enter unless told) in a chat's input; returns the event. */
export function press(el: HTMLElement, init: KeyboardEventInit = {}): KeyboardEvent {
  const event = new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true, ...init });
  el.querySelector("textarea.rxnb-chat-input")!.dispatchEvent(event);
  return event;
}
