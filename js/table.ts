/**
 * The table kind: `table.rxnb-table`, kept in step with the payload row by row.
 *
 * Responsibilities:
 * - one `<tr data-key>` per row, found again by key on the next update, so a diff
 *   touches only the rows it removed, changed or inserted (every other `<tr>` stays the
 *   same node: selection, scroll and focus survive);
 * - sorting by a header click: ascending, descending, original order (`aria-sort`);
 * - at most `MAX_ROWS` rows in the DOM, and a note telling how many more there are.
 */
import { fillCell, formatValue, sameValue } from "./cells";
import { rowKey, type Json, type Payload, type Row } from "./protocol";

export const MAX_ROWS = 1000;

export type SortDirection = "ascending" | "descending";

interface Sort {
  column: string;
  direction: SortDirection;
}

interface Entry {
  /** Identity across updates: the key string, or the position for keyless tables. */
  id: string;
  key: string | null;
  row: Row;
}

interface Rendered {
  row: Row;
  tr: HTMLTableRowElement;
}

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
  #columns: string[] = [];
  #sort: Sort | null = null;
  #rendered = new Map<string, Rendered>();
  #payload: Payload | null = null;

  constructor(parent: HTMLElement) {
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
  }

  get sort(): Sort | null {
    return this.#sort;
  }

  update(payload: Payload): void {
    this.#payload = payload;
    if (!sameColumns(this.#columns, payload.columns)) this.#setColumns(payload.columns);
    const entries = this.#order(identify(payload));
    const visible = entries.slice(0, MAX_ROWS);
    this.#patchRows(visible);
    const hidden = entries.length - visible.length;
    this.more.hidden = hidden === 0;
    this.more.textContent =
      hidden === 0 ? "" : `… ${hidden.toLocaleString("en")} more ${hidden === 1 ? "row" : "rows"}`;
  }

  #setColumns(columns: string[]): void {
    this.#columns = columns.slice();
    if (this.#sort !== null && !columns.includes(this.#sort.column)) this.#sort = null;
    this.#head.replaceChildren(
      ...columns.map((name) => {
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
    this.#showSort();
    // Cells are laid out by column: with new columns no row can be kept.
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
    const c = this.#columns.indexOf(sort.column);
    const sign = sort.direction === "ascending" ? 1 : -1;
    return entries.slice().sort((x, y) => {
      const a = x.row[c] ?? null;
      const b = y.row[c] ?? null;
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
        next.set(entry.id, { row: entry.row, tr: old.tr });
      } else {
        next.set(entry.id, { row: entry.row, tr: this.#makeRow(entry) });
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

  #makeRow(entry: Entry): HTMLTableRowElement {
    const tr = document.createElement("tr");
    if (entry.key !== null) tr.setAttribute("data-key", entry.key);
    this.#columns.forEach((name, i) => {
      const td = tr.insertCell();
      td.setAttribute("data-col", name);
      fillCell(td, entry.row[i]);
    });
    return tr;
  }
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, i) => name === b[i]);
}

function sameRow(a: Row, b: Row): boolean {
  return a.length === b.length && a.every((value, i) => sameValue(value, b[i]));
}

/** Each row with its identity; a repeated key (never expected) is made unique by a suffix. */
function identify(payload: Payload): Entry[] {
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
