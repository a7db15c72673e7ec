/**
 * The eval grid of `rx.evals.run` (a table payload with an `evals` field,
 * docs/widget-protocol.md): `table.rxnb-evals`, a row per case and a column per model.
 *
 * Responsibilities:
 * - pivot the rows (one per case x model, `kind` "case") into one `tr.rxnb-eval-case`
 *   per case: its number, input and expected answer, then one `td.rxnb-eval-cell` per
 *   model with the output (plain text, clipped), a chip per score, the cost and the
 *   status (`data-status`), and the error line if the task failed;
 * - the rows of `kind` "summary" as a `tfoot` row `tr.rxnb-eval-summary`: per model the
 *   mean of each score, the cost and how many cases are done or failed;
 * - rebuild the body on each update (an eval's grid is small: at most `MAX_CASES`
 *   cases are shown, then a note says how many more there are).
 *
 * Model output is shown as text only (`textContent`), never as markup.
 */
import type { Connection } from "./connection";
import type { FieldMap, Json, Payload, Row } from "./protocol";

export const MAX_CASES = 500;
const OUTPUT_CHARS = 600;

/** One row read through the `evals` field's columns. */
export interface EvalRow {
  kind: string;
  case: number | null;
  model: string;
  input: string;
  expected: string;
  output: string;
  status: string;
  scores: Record<string, number | null>;
  notes: Record<string, string>;
  cost: number | null;
  error: string | null;
}

function text(value: Json | undefined): string {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function record<T>(value: Json | undefined, keep: (v: Json) => v is T & Json): Record<string, T> {
  const out: Record<string, T> = {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) return out;
  for (const [k, v] of Object.entries(value)) if (keep(v)) out[k] = v;
  return out;
}

const isScore = (v: Json): v is number | null => v === null || (typeof v === "number" && Number.isFinite(v));
const isText = (v: Json): v is string => typeof v === "string";

export function evalRowOf(row: Row, columns: string[], view: FieldMap): EvalRow {
  const cell = (part: string): Json | undefined => {
    const name = Object.hasOwn(view, part) ? view[part] : undefined;
    const i = name === undefined ? -1 : columns.indexOf(name);
    return i < 0 ? undefined : row[i];
  };
  const number = cell("case");
  const cost = cell("cost");
  const error = cell("error");
  return {
    kind: text(cell("kind")) || "case",
    case: typeof number === "number" ? number : null,
    model: text(cell("model")),
    input: text(cell("input")),
    expected: text(cell("expected")),
    output: text(cell("output")),
    status: text(cell("status")),
    scores: record(cell("scores"), isScore),
    notes: record(cell("notes"), isText),
    cost: typeof cost === "number" ? cost : null,
    error: typeof error === "string" ? error : null,
  };
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, content = ""): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  if (content) el.textContent = content;
  return el;
}

function score(value: number | null): string {
  return value === null ? "—" : String(Math.round(value * 100) / 100);
}

function cost(value: number | null): string {
  return value === null ? "" : `$${value.toFixed(value < 0.01 ? 6 : 4)}`;
}

function chips(scores: Record<string, number | null>, notes: Record<string, string>): HTMLDivElement {
  const box = element("div", "rxnb-eval-scores");
  for (const [name, value] of Object.entries(scores)) {
    const chip = element("span", "rxnb-eval-score", `${name} ${score(value)}`);
    chip.setAttribute("data-score", name);
    if (value !== null) chip.setAttribute("data-value", String(value));
    if (Object.hasOwn(notes, name)) chip.title = notes[name] ?? "";
    box.append(chip);
  }
  return box;
}

export class EvalsPanel {
  readonly root: HTMLDivElement;
  readonly #table = element("table", "rxnb-evals");
  readonly #note = element("div", "rxnb-eval-note");

  constructor(parent: HTMLElement) {
    this.root = element("div", "rxnb-evals-view");
    this.root.append(this.#table, this.#note);
    parent.append(this.root);
  }

  update(payload: Payload): void {
    const view = payload.evals ?? {};
    const rows = payload.rows.map((row) => evalRowOf(row, payload.columns, view));
    const models: string[] = [];
    const cases = new Map<number, Map<string, EvalRow>>();
    const summary = new Map<string, EvalRow>();
    for (const row of rows) {
      if (!models.includes(row.model)) models.push(row.model);
      if (row.kind === "summary") summary.set(row.model, row);
      else if (row.case !== null) {
        let byModel = cases.get(row.case);
        if (byModel === undefined) cases.set(row.case, (byModel = new Map()));
        byModel.set(row.model, row);
      }
    }
    const head = element("thead", "");
    const top = element("tr", "");
    top.append(element("th", "", "#"), element("th", "", "input"), element("th", "", "expected"));
    for (const model of models) top.append(element("th", "rxnb-eval-model", model));
    head.append(top);

    const body = element("tbody", "");
    const numbers = [...cases.keys()].sort((a, b) => a - b);
    for (const number of numbers.slice(0, MAX_CASES)) {
      const byModel = cases.get(number) ?? new Map<string, EvalRow>();
      const first = byModel.values().next().value;
      const tr = element("tr", "rxnb-eval-case");
      tr.setAttribute("data-case", String(number));
      tr.append(
        element("td", "rxnb-eval-number", String(number)),
        element("td", "rxnb-eval-input", first?.input ?? ""),
        element("td", "rxnb-eval-expected", first?.expected ?? ""),
      );
      for (const model of models) tr.append(this.#cell(byModel.get(model)));
      body.append(tr);
    }
    const foot = element("tfoot", "");
    if (summary.size > 0) {
      const tr = element("tr", "rxnb-eval-summary");
      const label = element("td", "", "summary");
      label.colSpan = 3;
      tr.append(label);
      for (const model of models) {
        const row = summary.get(model);
        const td = element("td", "rxnb-eval-cell");
        td.setAttribute("data-model", model);
        if (row !== undefined) {
          td.setAttribute("data-status", row.status);
          td.append(chips(row.scores, {}), element("div", "rxnb-eval-meta", [row.output, cost(row.cost)].filter(Boolean).join(" · ")));
        }
        tr.append(td);
      }
      foot.append(tr);
    }
    this.#table.replaceChildren(head, body, foot);
    const more = numbers.length - MAX_CASES;
    this.#note.hidden = more <= 0;
    this.#note.textContent = more > 0 ? `… ${more} more cases` : "";
  }

  setConnection(_connection: Connection): void {
    // Nothing here calls the kernel or moves.
  }

  dispose(): void {
    this.root.remove();
  }

  #cell(row: EvalRow | undefined): HTMLTableCellElement {
    const td = element("td", "rxnb-eval-cell");
    if (row === undefined) return td;
    td.setAttribute("data-model", row.model);
    td.setAttribute("data-status", row.status);
    const output = row.output.length > OUTPUT_CHARS ? `${row.output.slice(0, OUTPUT_CHARS)}…` : row.output;
    td.append(element("div", "rxnb-eval-output", output));
    td.append(chips(row.scores, row.notes));
    const meta = [row.status === "done" ? "" : row.status, cost(row.cost)].filter(Boolean).join(" · ");
    if (meta) td.append(element("div", "rxnb-eval-meta", meta));
    if (row.error !== null) {
      const error = element("div", "rxnb-eval-error", row.error);
      error.setAttribute("role", "alert");
      td.append(error);
    }
    return td;
  }
}
