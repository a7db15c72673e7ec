/**
 * The live widget protocol (docs/widget-protocol.md), as pure functions.
 *
 * Responsibilities:
 * - the payload and message types, and `normalizePayload` for whatever the kernel sent;
 * - row key strings (`rowKey`, `keyString`);
 * - `applyMessage`: a `full`, `diff` or `append` applied to a payload under the
 *   version rules, returning what happened instead of throwing;
 * - the optional table fields `actions`, `formats`, `hidden`, `chat` and `timeline`, and the
 *   `call` / `reply` pair that row actions, the chat's input and its abort button travel
 *   in (`parseReply`).
 *
 * Nothing here touches the DOM or the model; payloads are never mutated, and a diff
 * keeps the identity of every row array it does not change (the table view relies on
 * that to leave untouched rows' DOM nodes alone).
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Row = Json[];
export type Kind = "table" | "markdown" | "value" | "json";

export interface ErrorInfo {
  type: string;
  message: string;
}

export interface Payload {
  version: number;
  title: string;
  kind: Kind;
  error: ErrorInfo | null;
  columns: string[];
  /** Indexes of the primary-key columns, or null: rows without identity. */
  key: number[] | null;
  rows: Row[];
  text: string;
  value: Json;
  /** Kind "table": buttons in each row that call a bound function (absent: none). */
  actions?: RowAction[];
  /** Kind "table": how some columns' cells read (absent: all as plain text). */
  formats?: Formats;
  /**
   * Kind "table": columns the table does not show (nor sort by), which formats and
   * actions still read from the row (absent: every column shows).
   */
  hidden?: string[];
  /** Kind "table": show the rows as a chat thread instead of a table (absent: a table). */
  chat?: ChatView;
  /** Kind "table": show the rows (steps) as bars on a time axis (absent: a table). */
  timeline?: TimelineView;
  /** Kind "table": show the rows as model columns side by side (models.ts; absent: a table). */
  models?: FieldMap;
  /** Kind "table": show the rows as an eval grid, case x model (evals.ts; absent: a table). */
  evals?: FieldMap;
}

/** A view field naming which column holds each part it shows (`{part: column}`). */
export type FieldMap = Readonly<Record<string, string>>;

/**
 * The `chat` field: which columns of the rows mean what, and which bound functions the
 * input and the abort button call. A column named here that the payload lacks reads as
 * null in every row.
 */
export interface ChatView {
  /** Column of the message text. */
  text: string;
  /** Column of the role ("user", "assistant", …), or null: every message is plain text. */
  role: string | null;
  /** Column of the status (pending, streaming, done, cancelled, failed), or null. */
  status: string | null;
  /** Column of the token usage and cost, or null. */
  usage: string | null;
  /** Column of the reason a reply failed (one line), or null. */
  error: string | null;
  /** Column of the failure's details (a traceback), folded under the error; or null. */
  detail: string | null;
  /** Column of a short line about the message's history (resumed, interrupted), or null. */
  note: string | null;
  /** What the input calls: `fn` with `{...args, [text_arg]: text}`; null: no input. */
  send: { fn: string; args: Record<string, Json>; text_arg: string } | null;
  /** What the abort button calls: `fn` with `{[arg]: <first key value>}`; null: no button. */
  cancel: { fn: string; arg: string } | null;
  placeholder: string;
  /**
   * Tool calls (absent: none): a row whose role is "tool" is one call, shown as a card
   * (chat-tool.ts). Columns of the tool's name, its arguments (JSON text as streamed),
   * its approval (null, "pending", "approved" or "denied") and its call id.
   */
  tool?: ToolColumns;
  /**
   * What a tool call's Approve / Deny buttons call (absent: no buttons): `fn` with
   * `{[arg]: <the row's call id>, approved, note}`.
   */
  approve?: { fn: string; arg: string };
  /**
   * A paged chat (absent: the rows are the whole thread): what the log calls, with no
   * arguments, for the page before the oldest it shows once the reader scrolls to its
   * top; the reply's result is `{"done": bool, "rows": n}` (`done`: no earlier page).
   */
  earlier?: { fn: string };
  /** Stored files (absent: none): the column naming each message's files, and the
   * call fetching one (`{id, download}`; file-part.ts). */
  files?: { column: string; fn: string };
}

/** The `chat` field's `tool` part: the columns of a tool call's row. */
export interface ToolColumns {
  name: string;
  arguments: string;
  approval: string | null;
  call: string;
}

/**
 * The `timeline` field: which columns of the rows (one per journaled step) mean what.
 * A column named here that the payload lacks reads as null in every row.
 */
export interface TimelineView {
  /** Column of the run a step belongs to (one group of lanes per run), or null: one group. */
  run: string | null;
  label: string | null;
  seq: string | null;
  /** Column of the step's kind: step, query, …, sleep and event (drawn hatched). */
  kind: string | null;
  status: string | null;
  /** Columns of the start and end times, epoch seconds (end null: still going). */
  start: string;
  end: string;
  attempts: string | null;
  /** Column of the step's output (or error) as short text. */
  preview: string | null;
}

/** A row action: a button that calls `name` with `{[arg]: row[column]}`. */
export interface RowAction {
  name: string;
  label: string;
  column: string;
  arg: string;
  /** Shown only on rows whose `when.column` holds one of `when.in`; null: on every row. */
  when: { column: string; in: Json[] } | null;
}

export const CELL_FORMATS = ["status", "progress", "elapsed", "time", "json", "code", "error", "file"] as const;
export type CellFormat = (typeof CELL_FORMATS)[number];

/** Column name to format. Read it with `Object.hasOwn`: column names are not trusted keys. */
export type Formats = Readonly<Record<string, CellFormat>>;

/** Browser to kernel: call bound function `fn`. */
export interface CallMessage {
  type: "call";
  id: number;
  fn: string;
  args: Record<string, Json>;
}

/** Kernel to browser: the answer to the `call` with the same `id`. */
export type Reply = { id: number; ok: true; result: Json } | { id: number; ok: false; error: ErrorInfo };

export interface FullMessage {
  type: "full";
  payload: unknown;
}

export interface DiffMessage {
  type: "diff";
  base: number;
  version: number;
  removed: Json[][];
  changed: Row[];
  /** `[keyvals, column index, text]`: text added at the end of a string cell. */
  appended?: [Json[], number, string][];
  /** `[keyvals, column index, value]`: a cell's new value (beside `appended` text). */
  cells?: [Json[], number, Json][];
  inserted: [number, Row][];
}

export interface AppendMessage {
  type: "append";
  base: number;
  version: number;
  text: string;
}

export type UpdateMessage = FullMessage | DiffMessage | AppendMessage;

/** What `applyMessage` did. */
export type Outcome =
  | { status: "applied"; payload: Payload; by: UpdateMessage["type"] }
  /** Older than what is held: ignore it. */
  | { status: "stale" }
  /** Something was missed, or the message does not fit what is held: ask for a full. */
  | { status: "gap"; reason: string }
  /** Not an update (a `reply`, an unknown type): nothing to do. */
  | { status: "ignored" };

const KINDS: readonly string[] = ["table", "markdown", "value", "json"];

export function emptyPayload(): Payload {
  return {
    version: 0,
    title: "",
    kind: "value",
    error: null,
    columns: [],
    key: null,
    rows: [],
    text: "",
    value: null,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function errorInfo(raw: Record<string, unknown>): ErrorInfo {
  return { type: String(raw.type ?? "Error"), message: String(raw.message ?? "") };
}

function isIndexList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((i) => Number.isInteger(i) && i >= 0);
}

/**
 * A payload from the `payload` trait or a `full` message, with defaults for missing
 * or mistyped fields, so that rendering never has to doubt its input.
 */
export function normalizePayload(raw: unknown): Payload {
  const payload = emptyPayload();
  if (!isRecord(raw)) return payload;
  if (typeof raw.version === "number") payload.version = raw.version;
  if (typeof raw.title === "string") payload.title = raw.title;
  if (typeof raw.kind === "string" && KINDS.includes(raw.kind)) payload.kind = raw.kind as Kind;
  if (isRecord(raw.error)) payload.error = errorInfo(raw.error);
  if (Array.isArray(raw.columns)) payload.columns = raw.columns.map(String);
  if (isIndexList(raw.key)) payload.key = raw.key;
  if (Array.isArray(raw.rows)) payload.rows = raw.rows.filter(Array.isArray) as Row[];
  if (typeof raw.text === "string") payload.text = raw.text;
  if (raw.value !== undefined) payload.value = raw.value as Json;
  if (Array.isArray(raw.actions)) payload.actions = raw.actions.flatMap(normalizeAction);
  if (isRecord(raw.formats)) payload.formats = normalizeFormats(raw.formats);
  if (Array.isArray(raw.hidden)) payload.hidden = raw.hidden.filter((c): c is string => typeof c === "string");
  const chat = payload.kind === "table" ? normalizeChat(raw.chat) : null;
  if (chat !== null) payload.chat = chat;
  const timeline = payload.kind === "table" ? normalizeTimeline(raw.timeline) : null;
  if (timeline !== null) payload.timeline = timeline;
  for (const name of ["models", "evals"] as const) {
    const parts = raw[name];
    if (payload.kind === "table" && isRecord(parts)) {
      payload[name] = Object.fromEntries(Object.entries(parts).filter((e): e is [string, string] => typeof e[1] === "string"));
    }
  }
  return payload;
}

/** A column name, or null for anything else (a missing or mistyped column means "none"). */
function columnName(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/**
 * The `chat` field, or null (no chat: the rows show as a table) if it cannot be one: it
 * must name the text column. A malformed `send` or `cancel` is null, like one the kernel
 * left out: no input, or no abort button, rather than a call that cannot be right.
 */
function normalizeChat(raw: unknown): ChatView | null {
  if (!isRecord(raw) || typeof raw.text !== "string") return null;
  let send: ChatView["send"] = null;
  if (isRecord(raw.send) && typeof raw.send.fn === "string") {
    const args = raw.send.args ?? {};
    const textArg = raw.send.text_arg ?? "text";
    if (isRecord(args) && typeof textArg === "string") {
      send = { fn: raw.send.fn, args: args as Record<string, Json>, text_arg: textArg };
    }
  }
  let cancel: ChatView["cancel"] = null;
  if (isRecord(raw.cancel) && typeof raw.cancel.fn === "string" && typeof raw.cancel.arg === "string") {
    cancel = { fn: raw.cancel.fn, arg: raw.cancel.arg };
  }
  const chat: ChatView = {
    text: raw.text,
    role: columnName(raw.role),
    status: columnName(raw.status),
    usage: columnName(raw.usage),
    error: columnName(raw.error),
    detail: columnName(raw.detail),
    note: columnName(raw.note),
    send,
    cancel,
    placeholder: typeof raw.placeholder === "string" ? raw.placeholder : "Message",
  };
  // Tool calls: left out unless well formed (tool rows then read as plain messages).
  const tool = raw.tool;
  if (
    isRecord(tool) &&
    typeof tool.name === "string" &&
    typeof tool.arguments === "string" &&
    typeof tool.call === "string"
  ) {
    chat.tool = { name: tool.name, arguments: tool.arguments, approval: columnName(tool.approval), call: tool.call };
  }
  if (isRecord(raw.approve) && typeof raw.approve.fn === "string" && typeof raw.approve.arg === "string") {
    chat.approve = { fn: raw.approve.fn, arg: raw.approve.arg };
  }
  if (isRecord(raw.earlier) && typeof raw.earlier.fn === "string") chat.earlier = { fn: raw.earlier.fn };
  if (isRecord(raw.files) && typeof raw.files.column === "string" && typeof raw.files.fn === "string") {
    chat.files = { column: raw.files.column, fn: raw.files.fn };
  }
  return chat;
}

const TIMELINE_PARTS = ["run", "label", "seq", "kind", "status", "attempts", "preview"] as const;

/**
 * The `timeline` field, or null (no timeline: the rows show as a table) if it cannot be
 * one: it must name the `start` and `end` columns, without which no bar can be drawn.
 * Any other part missing or mistyped is null: that column is not shown.
 */
function normalizeTimeline(raw: unknown): TimelineView | null {
  if (!isRecord(raw) || typeof raw.start !== "string" || typeof raw.end !== "string") return null;
  const view = { start: raw.start, end: raw.end } as TimelineView;
  for (const part of TIMELINE_PARTS) view[part] = columnName(raw[part]);
  return view;
}

/**
 * A row action as the kernel described it, or nothing if it cannot be one: a missing
 * `label` is the name and a missing `arg` the column; an action with a malformed `when`
 * is dropped rather than shown on every row.
 */
function normalizeAction(raw: unknown): RowAction[] {
  if (!isRecord(raw) || typeof raw.name !== "string" || typeof raw.column !== "string") return [];
  let when: RowAction["when"] = null;
  if (raw.when !== undefined && raw.when !== null) {
    if (!isRecord(raw.when) || typeof raw.when.column !== "string" || !Array.isArray(raw.when.in)) return [];
    when = { column: raw.when.column, in: raw.when.in as Json[] };
  }
  const label = typeof raw.label === "string" ? raw.label : raw.name;
  const arg = typeof raw.arg === "string" ? raw.arg : raw.column;
  return [{ name: raw.name, label, column: raw.column, arg, when }];
}

/** Known formats only: a column with an unknown one reads as plain text. */
function normalizeFormats(raw: Record<string, unknown>): Formats {
  const known: readonly unknown[] = CELL_FORMATS;
  return Object.fromEntries(Object.entries(raw).filter(([, format]) => known.includes(format))) as Formats;
}

/** A `reply` message, or null for anything else. */
export function parseReply(message: unknown): Reply | null {
  if (!isRecord(message) || message.type !== "reply" || typeof message.id !== "number") return null;
  if (message.ok === true) return { id: message.id, ok: true, result: (message.result ?? null) as Json };
  return { id: message.id, ok: false, error: errorInfo(isRecord(message.error) ? message.error : {}) };
}

/** The key string of a row's key values: `JSON.stringify(keyvals)`. */
export function keyString(keyValues: readonly Json[]): string {
  return JSON.stringify(keyValues);
}

/** A row's key string, as the protocol defines it: `JSON.stringify(key.map(i => row[i]))`. */
export function rowKey(key: readonly number[], row: Row): string {
  // A short row gives `undefined`, which JSON.stringify writes as null inside an array.
  return keyString(key.map((i) => row[i] ?? null));
}

function isUpdateMessage(message: unknown): message is UpdateMessage {
  if (!isRecord(message)) return false;
  if (message.type === "full") return true;
  if (message.type !== "diff" && message.type !== "append") return false;
  return typeof message.base === "number" && typeof message.version === "number";
}

/**
 * Apply one kernel message to the payload held.
 *
 * Rules (docs/widget-protocol.md):
 * 1. `full` replaces everything, whatever its version: it is the kernel's whole truth.
 * 2. A `diff` or `append` whose `base` is below the version held (or whose `version`
 *    is not above it) is stale and ignored.
 * 3. A `diff` or `append` whose `base` is above the version held means a message was
 *    missed: a gap.
 * 4. A `diff` or `append` whose `base` equals the version held applies, and the payload
 *    takes its `version`. One that cannot apply (a diff to a keyless table or a key
 *    that is not there, appended text for a cell that is not a string, an append to a
 *    non-markdown payload) is treated as a gap too: only a full can repair it.
 */
export function applyMessage(held: Payload, message: unknown): Outcome {
  if (!isUpdateMessage(message)) return { status: "ignored" };
  if (message.type === "full") {
    return { status: "applied", payload: normalizePayload(message.payload), by: "full" }; // rule 1
  }
  if (message.base < held.version || message.version <= held.version) return { status: "stale" }; // rule 2
  if (message.base > held.version) {
    return { status: "gap", reason: `base ${message.base} is ahead of version ${held.version}` }; // rule 3
  }
  return message.type === "diff" ? applyDiff(held, message) : applyAppend(held, message); // rule 4
}

function applyAppend(held: Payload, message: AppendMessage): Outcome {
  if (held.kind !== "markdown") return { status: "gap", reason: `append to a ${held.kind} payload` };
  if (typeof message.text !== "string") return { status: "gap", reason: "append without text" };
  const payload = { ...held, version: message.version, text: held.text + message.text };
  return { status: "applied", payload, by: "append" };
}

/**
 * Table rows after a diff: drop `removed`, replace `changed` in place by key, add the
 * `appended` text to its cells, set the `cells`, then insert each `inserted` row at its
 * index of the new list, in ascending index order.
 */
function applyDiff(held: Payload, message: DiffMessage): Outcome {
  const key = held.key;
  if (held.kind !== "table" || key === null) {
    return { status: "gap", reason: "diff to a table without key" };
  }
  const removed = message.removed ?? [];
  const changed = message.changed ?? [];
  const appended: unknown = message.appended ?? [];
  if (!Array.isArray(appended)) return { status: "gap", reason: "appended is not a list" };
  const cells: unknown = message.cells ?? [];
  if (!Array.isArray(cells)) return { status: "gap", reason: "cells is not a list" };
  const inserted = message.inserted ?? [];

  const drop = new Set(removed.map(keyString));
  const rows = drop.size === 0 ? held.rows.slice() : held.rows.filter((row) => !drop.has(rowKey(key, row)));
  if (held.rows.length - rows.length !== drop.size) {
    return { status: "gap", reason: "a removed key is not held" };
  }

  if (changed.length > 0 || appended.length > 0 || cells.length > 0) {
    const position = new Map<string, number>();
    rows.forEach((row, i) => position.set(rowKey(key, row), i));
    for (const row of changed) {
      const i = position.get(rowKey(key, row));
      if (i === undefined) return { status: "gap", reason: `changed key ${rowKey(key, row)} is not held` };
      rows[i] = row;
    }
    const copied = new Set<number>();
    const gap = patchCells(rows, position, appended, "appended", copied) ?? patchCells(rows, position, cells, "cells", copied);
    if (gap !== null) return { status: "gap", reason: gap };
  }

  // Sorting is stable, so equal indexes keep the order the kernel sent them in.
  const ordered = inserted.slice().sort((a, b) => a[0] - b[0]);
  for (const [index, row] of ordered) {
    if (!Number.isInteger(index) || index < 0 || index > rows.length) {
      return { status: "gap", reason: `insert index ${index} is outside 0..${rows.length}` };
    }
    rows.splice(index, 0, row);
  }
  return { status: "applied", payload: { ...held, version: message.version, rows }, by: "diff" };
}

/**
 * Apply each `appended` entry (text added to a string cell) or `cells` entry (a cell's
 * new value) in `rows` (the diff's working copy), copying a row before its first
 * change so the held payload stays as it was. Returns why an entry cannot apply (a
 * gap), or null once all have.
 */
function patchCells(
  rows: Row[],
  position: ReadonlyMap<string, number>,
  entries: unknown[],
  part: "appended" | "cells",
  copied: Set<number>,
): string | null {
  for (const entry of entries) {
    if (!Array.isArray(entry) || entry.length !== 3 || !Array.isArray(entry[0])) {
      return `a malformed ${part} entry`;
    }
    if (part === "appended" && typeof entry[2] !== "string") return "a malformed appended entry";
    const [keyValues, column, value] = entry as [Json[], unknown, Json];
    const i = position.get(keyString(keyValues));
    if (i === undefined) return `${part} key ${keyString(keyValues)} is not held`;
    const row = rows[i]!;
    if (!Number.isInteger(column) || (column as number) < 0 || (column as number) >= row.length) {
      return `${part} column ${String(column)} is outside the row`;
    }
    const c = column as number;
    const cell = row[c];
    if (part === "appended" && typeof cell !== "string") {
      return `appended to a ${cell === null ? "null" : typeof cell} cell`;
    }
    const copy = copied.has(i) ? row : row.slice();
    copied.add(i);
    copy[c] = part === "appended" ? (cell as string) + (value as string) : value;
    rows[i] = copy;
  }
  return null;
}
