import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { normalizePayload, type Json, type Payload } from "./protocol";
import { LiveView } from "./render";

const EVALS = {
  kind: "kind",
  case: "case",
  model: "model",
  input: "input",
  expected: "expected",
  output: "output",
  status: "status",
  scores: "scores",
  notes: "notes",
  cost: "cost",
  error: "error",
};
const COLUMNS = ["id", "kind", "case", "model", "input", "expected", "output", "status", "scores", "notes", "cost", "error"];

function payload(rows: Json[][]): Payload {
  return normalizePayload({ version: 1, title: "eval", kind: "table", error: null, columns: COLUMNS, key: [0], rows, text: "", value: null, evals: EVALS });
}

let host: HTMLElement;
let view: LiveView;

beforeEach(() => {
  host = document.body.appendChild(document.createElement("div"));
  view = new LiveView(host);
});

afterEach(() => {
  view.dispose();
  document.body.replaceChildren();
});

describe("eval grid", () => {
  it("pivots case x model rows into a row per case and a summary row per model", () => {
    view.update(
      payload([
        ["1:a", "case", 1, "a", "2+2", "4", "4", "done", { exact: 1, judge: 0.5 }, { judge: "close" }, 0.001, null],
        ["1:b", "case", 1, "b", "2+2", "4", "five", "done", { exact: 0, judge: null }, null, 0, null],
        ["2:a", "case", 2, "a", "3+3", "6", "", "streaming", null, null, null, null],
        ["2:b", "case", 2, "b", "3+3", "6", "", "failed", null, null, null, "ValueError: broke"],
        ["summary:a", "summary", null, "a", "", "", "1/2 done, 0 failed", "running", { exact: 1, judge: 0.5 }, null, 0.001, null],
        ["summary:b", "summary", null, "b", "", "", "2/2 done, 1 failed", "done", { exact: 0 }, null, 0, null],
      ]),
    );
    expect(view.root.getAttribute("data-kind")).toBe("evals");
    const heads = [...host.querySelectorAll("thead th")].map((th) => th.textContent);
    expect(heads).toEqual(["#", "input", "expected", "a", "b"]);
    const cases = [...host.querySelectorAll<HTMLElement>("tr.rxnb-eval-case")];
    expect(cases.map((tr) => tr.getAttribute("data-case"))).toEqual(["1", "2"]);
    const cells = cases[0]?.querySelectorAll<HTMLElement>(".rxnb-eval-cell") ?? [];
    expect(cells[0]?.querySelector(".rxnb-eval-output")?.textContent).toBe("4");
    expect([...(cells[0]?.querySelectorAll(".rxnb-eval-score") ?? [])].map((s) => s.textContent)).toEqual(["exact 1", "judge 0.5"]);
    expect(cells[0]?.querySelector<HTMLElement>('[data-score="judge"]')?.title).toBe("close");
    expect(cells[1]?.querySelector('[data-score="judge"]')?.textContent).toBe("judge —");
    const failed = cases[1]?.querySelector<HTMLElement>('.rxnb-eval-cell[data-model="b"]');
    expect(failed?.getAttribute("data-status")).toBe("failed");
    expect(failed?.querySelector('[role="alert"]')?.textContent).toBe("ValueError: broke");
    const summary = host.querySelector("tfoot tr.rxnb-eval-summary");
    expect(summary?.textContent).toContain("1/2 done, 0 failed");
    expect(summary?.textContent).toContain("2/2 done, 1 failed");
  });

  it("shows model output as text only", () => {
    view.update(payload([["1:a", "case", 1, "a", "x", "y", "<b>bold</b><script>alert(1)</script>", "done", null, null, null, null]]));
    const output = host.querySelector(".rxnb-eval-output");
    expect(output?.querySelector("b, script")).toBeNull();
    expect(output?.textContent).toBe("<b>bold</b><script>alert(1)</script>");
  });
});
