/**
 * Cell formats (the payload's `formats`): how a column of a runs view reads.
 *
 * - `status`: a badge `span.rxnb-badge[data-status]`, with a CSS spinner while the run
 *   is active; a running row whose `cancel_requested` column is truthy reads "cancelling".
 * - `progress`: `{done, total, message}` as a `<progress>` bar and the message.
 * - `elapsed`: `[started_at, finished_at]` as a compact duration; while the run has
 *   started and not finished, the cell ticks (the table calls its `Tick` every second).
 * - `time`: epoch seconds as local `HH:MM:SS`, with the date if not today.
 * - `json`: compact JSON.
 * - `code`: plain text, on one line in monospace (ids, owners).
 * - `error`: the value (one line) as text, with the row's `details` column (a traceback),
 *   when it holds text, folded under it in `details.rxnb-detail`.
 *
 * Like every cell, a formatted one holds the store's strings as text only. A value the
 * format does not expect is shown as a plain cell, so a format never hides data.
 */
import { fillCell } from "./cells";
import type { CellFormat, Json } from "./protocol";

/** Statuses of a run that is still going: their badge spins. */
const ACTIVE = new Set(["queued", "running", "sleeping", "waiting", "cancelling"]);

/** Redraw a cell whose text depends on the time; `now` in epoch milliseconds. */
export type Tick = (now: number) => void;

/** The other cells of the row, by column name (undefined: no such column). */
export type RowLookup = (column: string) => Json | undefined;

function isRecord(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isTime(value: Json | undefined): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/**
 * `850 ms`, `12.3 s`, `4 m 05 s`, `2 h 03 m`. Rounded to the millisecond (differences of
 * float seconds are a hair off), then truncated, so a ticking clock never runs ahead.
 */
export function formatDuration(ms: number): string {
  const whole = Math.max(0, Math.round(ms));
  if (whole < 1000) return `${whole} ms`;
  const tenths = Math.floor(whole / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)} s`;
  const seconds = Math.floor(whole / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} m ${pad(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${pad(Math.floor(seconds / 60) % 60)} m`;
}

/** Epoch seconds as local `HH:MM:SS`, or `YYYY-MM-DD HH:MM:SS` if not on `now`'s day. */
export function formatTime(seconds: number, now: number): string {
  const d = new Date(seconds * 1000);
  const today = new Date(now);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** Compact JSON; a string that holds JSON (a TEXT column of JSON) is compacted too. */
function compactJson(value: Json): string {
  if (typeof value !== "string") return JSON.stringify(value);
  try {
    return JSON.stringify(JSON.parse(value) as Json);
  } catch {
    return value;
  }
}

/**
 * Fill `td` with `value` in `format`. Returns a `Tick` if the cell must be redrawn as
 * time passes, else null.
 */
export function fillFormatted(
  td: HTMLElement,
  format: CellFormat,
  value: Json | undefined,
  row: RowLookup,
  now: number,
): Tick | null {
  switch (format) {
    case "status":
      if (typeof value === "string" || typeof value === "number") {
        fillStatus(td, String(value), row("cancel_requested"));
        return null;
      }
      break;
    case "progress":
      if (fillProgress(td, value)) return null;
      break;
    case "elapsed":
      if (Array.isArray(value) && value.length === 2) return fillElapsed(td, value[0], value[1], now);
      break;
    case "time":
      if (isTime(value)) {
        td.textContent = formatTime(value, now);
        td.title = new Date(value * 1000).toISOString();
        return null;
      }
      break;
    case "json":
      if (value !== null && value !== undefined) {
        td.textContent = compactJson(value);
        return null;
      }
      break;
    case "code":
      break; // plain text; the stylesheet keeps it on one line, in monospace
    case "error":
      fillCell(td, value);
      appendDetail(td, row("details"));
      return null;
  }
  fillCell(td, value);
  return null;
}

/**
 * Fold `detail` (a traceback), if it holds text, under the cell's one line: the line is
 * what a reader scans a table for, the traceback what they open when it matters.
 */
function appendDetail(td: HTMLElement, detail: Json | undefined): void {
  if (typeof detail !== "string" || detail === "") return;
  const details = document.createElement("details");
  details.className = "rxnb-detail";
  const summary = document.createElement("summary");
  summary.textContent = "details";
  const pre = document.createElement("pre");
  pre.textContent = detail;
  details.append(summary, pre);
  td.append(details);
}

function fillStatus(td: HTMLElement, status: string, cancelRequested: Json | undefined): void {
  // The kernel sets cancel_requested and leaves a running run running until its code
  // sees the request: what the reader waits for is the cancellation.
  const shown = status === "running" && Boolean(cancelRequested) ? "cancelling" : status;
  td.replaceChildren(statusBadge(shown, ACTIVE.has(shown)));
}

/**
 * `span.rxnb-badge[data-status]` with `status` as its text, preceded by a spinner when
 * `spinning` (also the chat's message statuses, whose active ones are other words).
 */
export function statusBadge(status: string, spinning: boolean): HTMLSpanElement {
  const badge = document.createElement("span");
  badge.className = "rxnb-badge";
  badge.setAttribute("data-status", status);
  if (spinning) {
    const spinner = document.createElement("span");
    spinner.className = "rxnb-spinner";
    spinner.setAttribute("aria-hidden", "true");
    badge.append(spinner);
  }
  badge.append(status);
  return badge;
}

/** `{done, total, message}` or null; a string is read as its JSON (a TEXT column). False: not progress. */
function fillProgress(td: HTMLElement, value: Json | undefined): boolean {
  if (value === null) {
    td.replaceChildren();
    return true;
  }
  let progress: Json | undefined = value;
  if (typeof value === "string") {
    try {
      progress = JSON.parse(value) as Json;
    } catch {
      progress = { message: value };
    }
  }
  if (!isRecord(progress)) return false;
  const { done, total, message } = progress;
  const wrap = document.createElement("span");
  wrap.className = "rxnb-progress";
  if (typeof total === "number" && total > 0) {
    const bar = document.createElement("progress");
    bar.max = total;
    if (typeof done === "number") bar.value = Math.min(Math.max(done, 0), total);
    bar.title = `${typeof done === "number" ? done : "?"} / ${total}`;
    wrap.append(bar);
  }
  if (message !== undefined && message !== null) {
    const text = document.createElement("span");
    text.className = "rxnb-progress-message";
    text.textContent = typeof message === "string" ? message : JSON.stringify(message);
    wrap.append(text);
  }
  td.replaceChildren(wrap);
  return true;
}

function fillElapsed(
  td: HTMLElement,
  started: Json | undefined,
  finished: Json | undefined,
  now: number,
): Tick | null {
  if (!isTime(started)) {
    td.replaceChildren();
    return null;
  }
  if (isTime(finished)) {
    td.textContent = formatDuration((finished - started) * 1000);
    return null;
  }
  const tick: Tick = (at) => {
    td.textContent = formatDuration(at - started * 1000);
  };
  tick(now);
  return tick;
}

/**
 * What a formatted column sorts by: an elapsed cell by its duration, a progress cell by
 * its fraction done; other formats by the value itself.
 */
export function sortValue(format: CellFormat | undefined, value: Json | undefined, now: number): Json {
  if (format === "elapsed" && Array.isArray(value) && isTime(value[0])) {
    const end = isTime(value[1]) ? value[1] * 1000 : now;
    return end - value[0] * 1000;
  }
  if (format === "progress" && isRecord(value)) {
    const { done, total } = value;
    if (typeof done === "number" && typeof total === "number" && total > 0) return done / total;
  }
  return value ?? null;
}
