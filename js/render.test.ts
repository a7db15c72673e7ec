import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Payload } from "./protocol";
import { LiveView } from "./render";
import { tablePayload } from "./testing";

let host: HTMLElement;
let view: LiveView;

beforeEach(() => {
  host = document.body.appendChild(document.createElement("div"));
  view = new LiveView(host);
});

afterEach(() => {
  document.body.replaceChildren();
});

const q = <E extends Element = HTMLElement>(selector: string): E => {
  const el = host.querySelector<E>(selector);
  if (el === null) throw new Error(`nothing matches ${selector}`);
  return el;
};

function payloadOf(kind: Payload["kind"], extra: Partial<Payload> = {}): Payload {
  return { ...tablePayload([]), kind, key: null, columns: [], ...extra };
}

describe("root and header", () => {
  it("sets data-kind, data-version, data-state, title and row count", () => {
    view.update(
      tablePayload(
        [
          [1, "user", "hi"],
          [2, "assistant", "yo"],
        ],
        { version: 7 },
      ),
    );
    const root = q(".rxnb-live");
    expect(root.dataset).toMatchObject({ kind: "table", version: "7", state: "ok" });
    expect(q(".rxnb-title").textContent).toBe("messages(thread_id='t1')");
    expect(q(".rxnb-count").textContent).toBe("2 rows");
    expect(q(".rxnb-status").getAttribute("data-status")).toBe("live");
    expect(q(".rxnb-error").hidden).toBe(true);
  });

  it("shows the error above the last good data, and hides it once cleared", () => {
    const rows = [[1, "user", "hi"]];
    view.update(tablePayload(rows, { error: { type: "ZeroDivisionError", message: "division by zero" } }));
    expect(q(".rxnb-live").dataset.state).toBe("error");
    expect(q(".rxnb-error").hidden).toBe(false);
    expect(q(".rxnb-error-type").textContent).toBe("ZeroDivisionError");
    expect(q(".rxnb-error-message").textContent).toBe("division by zero");
    expect(host.querySelectorAll("tbody tr")).toHaveLength(1);
    // The banner comes before the data.
    expect(
      q(".rxnb-error").compareDocumentPosition(q("table.rxnb-table")) & Node.DOCUMENT_POSITION_FOLLOWING,
    ).toBeTruthy();

    view.update(tablePayload(rows, { version: 2 }));
    expect(q(".rxnb-live").dataset.state).toBe("ok");
    expect(q(".rxnb-error").hidden).toBe(true);
  });
});

describe("kinds", () => {
  it("table: header cells, keyed rows, text cells", () => {
    view.update(
      tablePayload([
        [1, "user", null],
        [2, "tool", { a: [1, 2] }],
        [3, "flag", true],
      ]),
    );
    const headers = [...host.querySelectorAll("th")].map((th) => th.getAttribute("data-col"));
    expect(headers).toEqual(["id", "role", "content"]);
    expect([...host.querySelectorAll("tbody tr")].map((tr) => tr.getAttribute("data-key"))).toEqual([
      "[1]",
      "[2]",
      "[3]",
    ]);
    const content = (key: string) => q(`tr[data-key="${key}"] td[data-col="content"]`);
    expect(content("[1]").textContent).toBe("—");
    expect(content("[1]").querySelector(".rxnb-null")).not.toBeNull();
    expect(content("[2]").textContent).toBe('{"a":[1,2]}');
    expect(content("[3]").textContent).toBe("true");
    expect(q('tr[data-key="[2]"] td[data-col="id"]').textContent).toBe("2");
  });

  it("table without key: rows have no data-key", () => {
    view.update(tablePayload([[1, "user", "hi"]], { key: null }));
    expect(host.querySelectorAll("tbody tr")).toHaveLength(1);
    expect(q("tbody tr").hasAttribute("data-key")).toBe(false);
  });

  it("markdown", () => {
    view.update(payloadOf("markdown", { text: "# Hi\n\nsome **bold** text" }));
    expect(q(".rxnb-markdown h1").textContent).toBe("Hi");
    expect(q(".rxnb-markdown strong").textContent).toBe("bold");
    expect(q(".rxnb-count").hidden).toBe(true);
  });

  it.each([
    { value: 42, text: "42" },
    { value: false, text: "false" },
    { value: null, text: "—" },
    { value: "<b>x</b>", text: "<b>x</b>" },
  ])("value $value", ({ value, text }) => {
    view.update(payloadOf("value", { value }));
    expect(q(".rxnb-value").textContent).toBe(text);
    expect(host.querySelector(".rxnb-value b")).toBeNull();
  });

  it("json", () => {
    const value = { a: 1, b: ["<x>", null] };
    view.update(payloadOf("json", { value }));
    const pre = q("pre.rxnb-json");
    expect(pre.textContent).toBe(JSON.stringify(value, null, 2));
    expect(pre.children).toHaveLength(0);
  });

  it("a change of kind replaces the body", () => {
    view.update(tablePayload([[1, "user", "hi"]]));
    view.update(payloadOf("json", { value: [1], version: 2 }));
    expect(host.querySelector("table")).toBeNull();
    expect(q(".rxnb-live").dataset.kind).toBe("json");
    expect(q("pre.rxnb-json").textContent).toBe("[\n  1\n]");
  });
});

describe("store strings are text, never markup", () => {
  const evil = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>"];

  it("in cells, column names, title and error", () => {
    view.update(
      tablePayload(
        evil.map((s, i) => [i, s, s]),
        {
          columns: ["id", evil[0]!, evil[1]!],
          title: evil[0]!,
          error: { type: evil[1]!, message: evil[0]! },
        },
      ),
    );
    expect(host.querySelectorAll("img, script")).toHaveLength(0);
    const cells = [...host.querySelectorAll("tbody tr")].map(
      (tr) => tr.querySelectorAll("td")[2]!.textContent,
    );
    expect(cells).toEqual(evil);
    expect(q(".rxnb-title").textContent).toBe(evil[0]);
    expect(q(".rxnb-error-type").textContent).toBe(evil[1]);
    expect([...host.querySelectorAll("th")].map((th) => th.textContent)).toEqual(["id", ...evil]);
  });

  it("in value and json", () => {
    view.update(payloadOf("value", { value: evil[1]! }));
    expect(host.querySelectorAll("img, script")).toHaveLength(0);
    view.update(payloadOf("json", { value: { x: evil[0]! } }));
    expect(host.querySelectorAll("img, script")).toHaveLength(0);
  });
});
