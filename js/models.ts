/**
 * The models view of `rx.llm.compare` (a table payload with a `models` field,
 * docs/widget-protocol.md): `div.rxnb-models`, one column `.rxnb-model` per row (model).
 *
 * Responsibilities:
 * - one column per row, found again by its model on each update, so a column that did
 *   not change keeps its nodes, and one that streams re-renders only its text;
 * - each column's header (model, status badge), its text as sanitized markdown
 *   (markdown.ts: no raw HTML, no images), its stats line (tokens, latency to first
 *   token, total time, cost) and its error line (`role="alert"`, text only);
 * - one interval timer per view while some column streams (started, not finished): the
 *   running time ticks; `dispose` and the kernel side going stop it.
 *
 * Every string from the store is text (`textContent`, attributes) or sanitized markdown.
 */
import type { Connection } from "./connection";
import { statusBadge } from "./formats";
import { renderMarkdown } from "./markdown";
import type { FieldMap, Json, Payload, Row } from "./protocol";

const TICK_MS = 250;
const STREAMING = new Set(["pending", "waiting", "streaming", "paused"]);

/** What a column shows of its row. */
export interface ModelColumn {
  model: string;
  status: string;
  text: string;
  tokens: number | null;
  /** Epoch seconds. */
  started: number | null;
  firstToken: number | null;
  finished: number | null;
  cost: number | null;
  error: string | null;
}

function num(value: Json | undefined): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function str(value: Json | undefined): string | null {
  return typeof value === "string" ? value : null;
}

/** A row read through the `models` field's columns (a missing column reads as null). */
export function columnOf(row: Row, columns: string[], view: FieldMap): ModelColumn {
  const cell = (part: string): Json | undefined => {
    const name = Object.hasOwn(view, part) ? view[part] : undefined;
    const i = name === undefined ? -1 : columns.indexOf(name);
    return i < 0 ? undefined : row[i];
  };
  return {
    model: str(cell("model")) ?? "",
    status: str(cell("status")) ?? "",
    text: str(cell("text")) ?? "",
    tokens: num(cell("tokens")),
    started: num(cell("started")),
    firstToken: num(cell("first_token")),
    finished: num(cell("finished")),
    cost: num(cell("cost")),
    error: str(cell("error")),
  };
}

function seconds(s: number): string {
  return s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`;
}

/** The stats line: tokens · first token · total · cost; `now` in epoch seconds. */
export function statsLine(column: ModelColumn, now: number): string {
  const parts: string[] = [];
  if (column.tokens !== null) parts.push(`${column.tokens.toLocaleString("en")} tokens`);
  if (column.started !== null && column.firstToken !== null) {
    parts.push(`first token ${seconds(Math.max(0, column.firstToken - column.started))}`);
  }
  if (column.started !== null) {
    const end = column.finished ?? now;
    parts.push(`${column.finished === null ? "running " : "total "}${seconds(Math.max(0, end - column.started))}`);
  }
  if (column.cost !== null) parts.push(`$${column.cost.toFixed(column.cost < 0.01 ? 6 : 4)}`);
  return parts.join(" · ");
}

interface Shown {
  root: HTMLDivElement;
  status: HTMLSpanElement;
  text: HTMLDivElement;
  stats: HTMLDivElement;
  error: HTMLDivElement;
  column: ModelColumn | null;
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  return el;
}

export class ModelsPanel {
  readonly root: HTMLDivElement;
  readonly #shown = new Map<string, Shown>();
  #timer: ReturnType<typeof setInterval> | null = null;
  #connection: Connection = "connected";
  #now: () => number;

  /** `now`: epoch seconds (tests pass a clock). */
  constructor(parent: HTMLElement, now: () => number = () => Date.now() / 1000) {
    this.#now = now;
    this.root = element("div", "rxnb-models");
    parent.append(this.root);
  }

  update(payload: Payload): void {
    const view = payload.models ?? {};
    const columns = payload.rows.map((row) => columnOf(row, payload.columns, view));
    const seen = new Set<string>();
    const order: HTMLDivElement[] = [];
    for (const column of columns) {
      if (seen.has(column.model)) continue;
      seen.add(column.model);
      let shown = this.#shown.get(column.model);
      if (shown === undefined) {
        shown = this.#make(column.model);
        this.#shown.set(column.model, shown);
      }
      this.#fill(shown, column);
      order.push(shown.root);
    }
    for (const [model, shown] of this.#shown) {
      if (!seen.has(model)) {
        shown.root.remove();
        this.#shown.delete(model);
      }
    }
    this.root.replaceChildren(...order);
    this.root.style.setProperty("--rxnb-model-count", String(Math.max(1, order.length)));
    this.#schedule();
  }

  setConnection(connection: Connection): void {
    this.#connection = connection;
    this.#schedule();
  }

  dispose(): void {
    this.#stop();
    this.root.remove();
  }

  #make(model: string): Shown {
    const root = element("div", "rxnb-model");
    root.setAttribute("data-model", model);
    const head = element("div", "rxnb-model-head");
    const name = element("span", "rxnb-model-name");
    name.textContent = model;
    const status = element("span", "rxnb-model-status");
    head.append(name, status);
    const text = element("div", "rxnb-model-text rxnb-markdown");
    const stats = element("div", "rxnb-model-stats");
    const error = element("div", "rxnb-model-error");
    error.setAttribute("role", "alert");
    root.append(head, text, stats, error);
    return { root, status, text, stats, error, column: null };
  }

  #fill(shown: Shown, column: ModelColumn): void {
    const before = shown.column;
    shown.root.setAttribute("data-status", column.status);
    if (before?.status !== column.status) {
      shown.status.replaceChildren(statusBadge(column.status, STREAMING.has(column.status)));
    }
    if (before?.text !== column.text) shown.text.replaceChildren(renderMarkdown(column.text));
    shown.stats.textContent = statsLine(column, this.#now());
    shown.error.hidden = column.error === null;
    shown.error.textContent = column.error ?? "";
    shown.column = column;
  }

  #going(): boolean {
    for (const shown of this.#shown.values()) {
      const c = shown.column;
      if (c !== null && c.started !== null && c.finished === null) return true;
    }
    return false;
  }

  #schedule(): void {
    if (this.#connection === "disconnected" || !this.#going()) {
      this.#stop();
      return;
    }
    this.#timer ??= setInterval(() => this.#tick(), TICK_MS);
  }

  #tick(): void {
    const now = this.#now();
    for (const shown of this.#shown.values()) {
      if (shown.column !== null) shown.stats.textContent = statsLine(shown.column, now);
    }
  }

  #stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
