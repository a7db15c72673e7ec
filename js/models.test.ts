import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { normalizePayload, type Json, type Payload } from "./protocol";
import { LiveView } from "./render";

const NOW = new Date(2024, 4, 6, 14, 30, 0).getTime();
const T = NOW / 1000;

const MODELS = {
  model: "model",
  status: "status",
  text: "text",
  tokens: "tokens",
  started: "started_at",
  first_token: "first_token_at",
  finished: "finished_at",
  cost: "cost",
  error: "error",
};
const COLUMNS = ["id", "model", "status", "text", "tokens", "cost", "error", "started_at", "first_token_at", "finished_at"];

function payload(rows: Json[][], version = 1): Payload {
  return normalizePayload({ version, title: "compare", kind: "table", error: null, columns: COLUMNS, key: [0], rows, text: "", value: null, models: MODELS });
}

let host: HTMLElement;
let view: LiveView;

beforeEach(() => {
  vi.useFakeTimers({ now: NOW });
  host = document.body.appendChild(document.createElement("div"));
  view = new LiveView(host);
});

afterEach(() => {
  view.dispose();
  vi.useRealTimers();
  document.body.replaceChildren();
});

describe("models view", () => {
  it("shows a column per model with its text, stats and error", () => {
    view.update(
      payload([
        [1, "a/one", "done", "**bold** answer", 12, 0.0002, null, T - 3, T - 2.5, T - 1],
        [2, "b/two", "streaming", "partial", null, null, null, T - 3, T - 2, null],
        [3, "c/three", "failed", "", null, null, "NotFoundError: no such model", T - 3, null, T - 2.9],
      ]),
    );
    expect(view.root.getAttribute("data-kind")).toBe("models");
    const columns = [...host.querySelectorAll<HTMLElement>(".rxnb-model")];
    expect(columns.map((c) => c.getAttribute("data-model"))).toEqual(["a/one", "b/two", "c/three"]);
    expect(columns.map((c) => c.getAttribute("data-status"))).toEqual(["done", "streaming", "failed"]);
    expect(columns[0]?.querySelector(".rxnb-model-text strong")?.textContent).toBe("bold");
    expect(columns[0]?.querySelector(".rxnb-model-stats")?.textContent).toBe("12 tokens · first token 0.50 s · total 2.00 s · $0.000200");
    expect(columns[1]?.querySelector(".rxnb-model-stats")?.textContent).toBe("first token 1.00 s · running 3.00 s");
    const error = columns[2]?.querySelector<HTMLElement>(".rxnb-model-error");
    expect(error?.hidden).toBe(false);
    expect(error?.textContent).toBe("NotFoundError: no such model");
    expect(columns[0]?.querySelector<HTMLElement>(".rxnb-model-error")?.hidden).toBe(true);
  });

  it("ticks a streaming column's running time and keeps unchanged columns' nodes", () => {
    const rows: Json[][] = [
      [1, "a/one", "done", "fixed", 3, 0, null, T - 2, T - 1.9, T - 1],
      [2, "b/two", "streaming", "par", null, null, null, T - 1, T - 0.5, null],
    ];
    view.update(payload(rows));
    const first = host.querySelector(".rxnb-model-text");
    vi.advanceTimersByTime(1000);
    expect(host.querySelectorAll(".rxnb-model-stats")[1]?.textContent).toBe("first token 0.50 s · running 2.00 s");
    view.update(payload([rows[0] as Json[], [2, "b/two", "done", "partial text", 9, 0, null, T - 1, T - 0.5, T + 1]], 2));
    expect(host.querySelector(".rxnb-model-text")).toBe(first);
    expect(host.querySelectorAll(".rxnb-model-text")[1]?.textContent?.trim()).toBe("partial text");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("renders model output inert: no raw HTML, no script", () => {
    view.update(payload([[1, "a/one", "done", '<img src=x onerror="alert(1)"><script>alert(2)</script>hi', null, null, null, null, null, null]]));
    const text = host.querySelector(".rxnb-model-text");
    expect(text?.querySelector("img, script")).toBeNull();
    expect(text?.textContent).toContain("hi");
  });
});
