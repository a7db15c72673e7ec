/**
 * The table kind: `table.rxnb-table`, kept in step with the payload row by row.
 *
 * Responsibilities:
 * - one `<tr data-key>` per row, found again by key on the next update, so a diff
 *   touches only the rows it removed, changed or inserted (every other `<tr>` stays the
 *   same node: selection, scroll and focus survive);
 * - sorting by a header click: ascending, descending, original order (`aria-sort`);
 * - at most `MAX_ROWS` rows in the DOM, and a note telling how many more there are;
 * - the columns' `formats` (formats.ts), and one timer per view, running only while a
 *   shown cell ticks (an elapsed time of a run still going);
 * - the `hidden` columns: not shown nor sortable, yet read by formats and actions;
 * - the row `actions` (actions.ts) in a last, unsortable column;
 * - once the kernel side is gone (connection.ts): actions disabled, the timer stopped
 *   (an elapsed time no longer counts up: what the run does now is not known here).
 */
import { callableActions, RowActions } from "./actions";
import type { Caller } from "./calls";
import { fillCell, formatValue, sameValue } from "./cells";
import type { Connection } from "./connection";
import { FILE_CALL, fillFiles, loadFileWith, type FileLoader } from "./file-part";
import { fillFormatted, sortValue, type RowLookup, type Tick } from "./formats";
import { rowKey, type CellFormat, type Json, type Payload, type Row, type RowAction } from "./protocol";

export const MAX_ROWS = 1000;

export type SortDirection = "ascending" | "descending";

interface Sort {
  column: string;
  direction: SortDirection;
}

export interface Entry {
  /** Identity across updates: the key string, or the position for keyless tables. */
  id: string;
  key: string | null;
  row: Row;
}

interface Rendered {
  row: Row;
  tr: HTMLTableRowElement;
  /** The row's cells that show the passing time. */
  ticks: Tick[];
}

/** What the cells are laid out by: a change rebuilds the header and every row. */
interface Layout {
  /** Every column of the rows, shown or not: formats and actions read cells by name. */
  columns: string[];
  /** Indexes of the columns shown, in order: all but the payload's `hidden`. */
  shown: number[];
  /** Each column's format, by column index (undefined: plain). */
  formats: (CellFormat | undefined)[];
  actions: RowAction[];
}

const TICK_MS = 1000;

const collator = new Intl.Collator(undefined, { numeric: true });

/** Order of types when one column holds several: numbers, booleans, strings, the rest. */
function typeRank(value: Json): number {
  switch (typeof value) {
    case "number":
      return 0;
    case "boolean":
      return 1;
    case "string":
      return 2;
    default:
      return 3;
  }
}

/** Compare two non-null cells: numbers numerically, text by a numeric-aware collation. */
export function compareValues(a: Json, b: Json): number {
  const rank = typeRank(a) - typeRank(b);
  if (rank !== 0) return rank;
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "boolean" && typeof b === "boolean") return Number(a) - Number(b);
  return collator.compare(formatValue(a), formatValue(b));
}

function nextSort(current: Sort | null, column: string): Sort | null {
  if (current === null || current.column !== column) return { column, direction: "ascending" };
  if (current.direction === "ascending") return { column, direction: "descending" };
  return null;
}

export class TableView {
  readonly table: HTMLTableElement;
  readonly more: HTMLDivElement;
  readonly #head: HTMLTableRowElement;
  readonly #body: HTMLTableSectionElement;
  readonly #caller: Caller | null;
  /** Fetches the files of `file` cells (file-part.ts), if the widget binds the call. */
  readonly #loadFile: FileLoader | null;
  readonly #actions: RowActions | null;
  #layout: Layout = { columns: [], shown: [], formats: [], actions: [] };
  #layoutId = "[[],[],[],[]]";
  #sort: Sort | null = null;
  #rendered = new Map<string, Rendered>();
  #payload: Payload | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #connection: Connection = "connected";

  /** `caller`: the model's functions, for row actions; null: no actions are shown. */
  constructor(parent: HTMLElement, caller: Caller | null = null) {
    this.table = document.createElement("table");
    this.table.className = "rxnb-table";
    const thead = this.table.createTHead();
    this.#head = thead.insertRow();
    this.#body = this.table.createTBody();
    this.more = document.createElement("div");
    this.more.className = "rxnb-more";
    this.more.hidden = true;
    thead.addEventListener("click", (event) => this.#onHeaderClick(event));
    parent.append(this.table, this.more);
    this.#caller = caller;
    this.#loadFile = loadFileWith(caller, { fn: FILE_CALL });
    this.#actions = caller === null ? null : new RowActions(caller, this.table);
  }

  get sort(): Sort | null {
    return this.#sort;
  }

  update(payload: Payload): void {
    this.#payload = payload;
    const layout = layoutOf(payload, this.#caller);
    const layoutId = JSON.stringify([layout.columns, layout.shown, layout.formats, layout.actions]);
    if (layoutId !== this.#layoutId) {
      this.#layoutId = layoutId;
      this.#setLayout(layout);
    }
    const entries = this.#order(identify(payload));
    const visible = entries.slice(0, MAX_ROWS);
    this.#patchRows(visible);
    this.#runTimer();
    const hidden = entries.length - visible.length;
    this.more.hidden = hidden === 0;
    this.more.textContent =
      hidden === 0 ? "" : `… ${hidden.toLocaleString("en")} more ${hidden === 1 ? "row" : "rows"}`;
  }

  /** Whether the kernel side is there; once gone, no action and no tick. */
  setConnection(connection: Connection): void {
    this.#connection = connection;
    this.#actions?.setConnected(connection === "connected");
    this.#runTimer();
  }

  /** Stop the timer and forget calls in flight; the view is going away. */
  dispose(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#actions?.dispose();
  }

  #setLayout(layout: Layout): void {
    const names = layout.shown.map((i) => layout.columns[i]!);
    this.#layout = layout;
    if (this.#sort !== null && !names.includes(this.#sort.column)) this.#sort = null;
    this.#head.replaceChildren(
      ...names.map((name) => {
        const th = document.createElement("th");
        th.setAttribute("data-col", name);
        th.scope = "col";
        const button = document.createElement("button");
        button.type = "button";
        button.className = "rxnb-sort";
        button.textContent = name;
        th.append(button);
        return th;
      }),
    );
    if (layout.actions.length > 0) {
      // No data-col and no sort button: the header click handler passes it by.
      const th = document.createElement("th");
      th.className = "rxnb-actions-head";
      th.scope = "col";
      th.setAttribute("aria-label", "Actions");
      this.#head.append(th);
    }
    this.#showSort();
    // Cells are laid out by column: with a new layout no row can be kept.
    this.#body.replaceChildren();
    this.#rendered.clear();
  }

  #onHeaderClick(event: Event): void {
    const th = (event.target as Element | null)?.closest("th[data-col]");
    const column = th?.getAttribute("data-col");
    if (column == null || this.#payload === null) return;
    this.#sort = nextSort(this.#sort, column);
    this.#showSort();
    this.update(this.#payload);
  }

  #showSort(): void {
    for (const th of this.#head.cells) {
      if (this.#sort !== null && th.getAttribute("data-col") === this.#sort.column) {
        th.setAttribute("aria-sort", this.#sort.direction);
      } else {
        th.removeAttribute("aria-sort");
      }
    }
  }

  /** Rows in display order: the payload's, or sorted (stably) with nulls last. */
  #order(entries: Entry[]): Entry[] {
    const sort = this.#sort;
    if (sort === null) return entries;
    const c = this.#layout.columns.indexOf(sort.column);
    const format = this.#layout.formats[c];
    const sign = sort.direction === "ascending" ? 1 : -1;
    const now = Date.now();
    return entries.slice().sort((x, y) => {
      const a = sortValue(format, x.row[c], now);
      const b = sortValue(format, y.row[c], now);
      if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
      return sign * compareValues(a, b);
    });
  }

  /** Make tbody hold exactly `visible`, in order, reusing every `<tr>` whose row is unchanged. */
  #patchRows(visible: Entry[]): void {
    const next = new Map<string, Rendered>();
    for (const entry of visible) {
      const old = this.#rendered.get(entry.id);
      if (old !== undefined && (old.row === entry.row || sameRow(old.row, entry.row))) {
        next.set(entry.id, { ...old, row: entry.row });
      } else {
        next.set(entry.id, this.#makeRow(entry));
      }
    }
    for (const [id, old] of this.#rendered) {
      if (next.get(id)?.tr !== old.tr) old.tr.remove();
    }
    // Walk the wanted order against the DOM; nodes already in place are not moved.
    let cursor = this.#body.firstChild;
    for (const { tr } of next.values()) {
      if (tr === cursor) cursor = cursor.nextSibling;
      else this.#body.insertBefore(tr, cursor);
    }
    this.#rendered = next;
  }

  #makeRow(entry: Entry): Rendered {
    const { columns, shown, formats, actions } = this.#layout;
    const { row } = entry;
    const tr = document.createElement("tr");
    if (entry.key !== null) tr.setAttribute("data-key", entry.key);
    const lookup: RowLookup = (name) => {
      const i = columns.indexOf(name);
      return i < 0 ? undefined : (row[i] ?? null);
    };
    const ticks: Tick[] = [];
    const now = Date.now();
    for (const i of shown) {
      const td = tr.insertCell();
      td.setAttribute("data-col", columns[i]!);
      const format = formats[i];
      if (format === undefined) {
        fillCell(td, row[i]);
        continue;
      }
      td.setAttribute("data-format", format);
      if (format === "file" && fillFiles(td, row[i], this.#loadFile)) continue;
      const tick = fillFormatted(td, format, row[i], lookup, now);
      if (tick !== null) ticks.push(tick);
    }
    if (this.#actions !== null && actions.length > 0) this.#actions.fill(tr.insertCell(), actions, lookup);
    return { row, tr, ticks };
  }

  /**
   * Tick every second while a shown cell shows the passing time and the kernel side is
   * there, else not at all.
   */
  #runTimer(): void {
    const ticking =
      this.#connection === "connected" && [...this.#rendered.values()].some((rendered) => rendered.ticks.length > 0);
    if (ticking && this.#timer === null) {
      this.#timer = setInterval(() => {
        const now = Date.now();
        for (const { ticks } of this.#rendered.values()) for (const tick of ticks) tick(now);
      }, TICK_MS);
    } else if (!ticking && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}

/** Columns, which are shown, their formats and the callable actions of `payload`. */
function layoutOf(payload: Payload, caller: Caller | null): Layout {
  const formats = payload.formats ?? {};
  const hidden = new Set(payload.hidden ?? []);
  return {
    columns: payload.columns,
    shown: payload.columns.flatMap((name, i) => (hidden.has(name) ? [] : [i])),
    formats: payload.columns.map((name) => (Object.hasOwn(formats, name) ? formats[name] : undefined)),
    actions: callableActions(payload.actions, caller),
  };
}

function sameRow(a: Row, b: Row): boolean {
  return a.length === b.length && a.every((value, i) => sameValue(value, b[i]));
}

/** Each row with its identity; a repeated key (never expected) is made unique by a suffix. */
export function identify(payload: Payload): Entry[] {
  const { key, rows } = payload;
  if (key === null) return rows.map((row, i) => ({ id: `#${i}`, key: null, row }));
  const seen = new Map<string, number>();
  return rows.map((row) => {
    const k = rowKey(key, row);
    const n = seen.get(k) ?? 0;
    seen.set(k, n + 1);
    return { id: n === 0 ? k : `${k}#${n}`, key: k, row };
  });
}
