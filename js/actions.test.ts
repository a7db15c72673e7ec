import { afterEach, describe, expect, it } from "vitest";
import type { CallMessage } from "./protocol";
import { FakeModel, diff, runRow, runsPayload, RUN_ACTIONS } from "./testing";
import { createWidget } from "./widget";

const FUNCTIONS = ["cancel", "retry"];

/** One model with `initialize` run and `views` views rendered, as anywidget would. */
function mount(payload: unknown, functions = FUNCTIONS, views = 1) {
  const model = new FakeModel(payload, "", functions);
  const widget = createWidget();
  const disposeModel = widget.initialize({ model: model.proxy() });
  model.answerConnect();
  const els = Array.from({ length: views }, () => document.body.appendChild(document.createElement("div")));
  const disposeViews = els.map((el) => widget.render({ model: model.proxy(), el }));
  return { model, el: els[0]!, els, disposeModel, disposeViews };
}

/** The actions shown on each row, by key. */
function buttons(el: HTMLElement): Record<string, string[]> {
  return Object.fromEntries(
    [...el.querySelectorAll("tbody tr")].map((tr) => [
      tr.getAttribute("data-key"),
      [...tr.querySelectorAll("button.rxnb-action")].map((b) => b.getAttribute("data-action")!),
    ]),
  );
}

function button(el: HTMLElement, key: string, action: string): HTMLButtonElement {
  const found = el.querySelector<HTMLButtonElement>(`tr[data-key='${key}'] button[data-action="${action}"]`);
  if (found === null) throw new Error(`no ${action} button on row ${key}`);
  return found;
}

function calls(model: FakeModel): CallMessage[] {
  return model.sent.filter((m): m is CallMessage => (m as { type?: unknown }).type === "call");
}

const rows = [
  runRow("a", "running"),
  runRow("b", "queued"),
  runRow("c", "failed"),
  runRow("d", "succeeded"),
  runRow("e", "cancelled"),
];

afterEach(() => {
  document.body.replaceChildren();
});

describe("buttons", () => {
  it("show on each row the actions whose `when` holds, in a last cell", () => {
    const { el } = mount(runsPayload(rows));
    expect(buttons(el)).toEqual({
      '["a"]': ["cancel"],
      '["b"]': ["cancel"],
      '["c"]': ["retry"],
      '["d"]': [],
      '["e"]': ["retry"],
    });
    expect(button(el, '["a"]', "cancel").textContent).toBe("Cancel");
    const head = el.querySelectorAll("thead th");
    expect(head[head.length - 1]!.className).toBe("rxnb-actions-head");
    expect(head[head.length - 1]!.textContent).toBe("");
    for (const tr of el.querySelectorAll("tbody tr")) {
      expect(tr.lastElementChild!.className).toBe("rxnb-actions");
      expect(tr.lastElementChild!.hasAttribute("data-col")).toBe(false);
    }
  });

  it("an action without `when` shows on every row", () => {
    const always = { name: "cancel", label: "Stop", column: "id", arg: "run_id", when: null };
    const { el } = mount(runsPayload(rows.slice(2, 4), { actions: [always] }));
    expect(buttons(el)).toEqual({ '["c"]': ["cancel"], '["d"]': ["cancel"] });
  });

  it("only for names in the model's `functions`", () => {
    const { el } = mount(runsPayload(rows), ["retry"]);
    expect(buttons(el)).toEqual({ '["a"]': [], '["b"]': [], '["c"]': ["retry"], '["d"]': [], '["e"]': ["retry"] });
  });

  it("no callable action: the table is as without actions", () => {
    const { el } = mount(runsPayload(rows), []);
    expect(el.querySelector(".rxnb-actions-head, td.rxnb-actions, button.rxnb-action")).toBeNull();
    const { el: plain } = mount(runsPayload(rows, { actions: [] }));
    expect(plain.querySelector(".rxnb-actions-head, td.rxnb-actions")).toBeNull();
  });

  it("follow diffs: running to cancelled swaps Cancel for Retry", () => {
    const { model, el } = mount(runsPayload(rows.slice(0, 2)));
    const untouched = el.querySelector("tr[data-key='[\"b\"]']");
    model.message(diff(1, { changed: [runRow("a", "running", { cancel: true })] }));
    expect(buttons(el)['["a"]']).toEqual(["cancel"]);
    model.message(diff(2, { changed: [runRow("a", "cancelled")], inserted: [[2, runRow("f", "failed")]] }));
    expect(buttons(el)).toEqual({ '["a"]': ["retry"], '["b"]': ["cancel"], '["f"]': ["retry"] });
    expect(el.querySelector("tr[data-key='[\"b\"]']")).toBe(untouched);
  });

  it("are rebuilt when a full brings other actions", () => {
    const { model, el } = mount(runsPayload(rows.slice(0, 1)));
    model.message({ type: "full", payload: runsPayload(rows.slice(0, 1), { version: 5, actions: [] }) });
    expect(buttons(el)).toEqual({ '["a"]': [] });
    expect(el.querySelector(".rxnb-actions-head")).toBeNull();
    model.message({ type: "full", payload: runsPayload(rows.slice(0, 1), { version: 6 }) });
    expect(buttons(el)).toEqual({ '["a"]': ["cancel"] });
  });
});

describe("a click", () => {
  it("sends a call with the row's value under `arg`, and a new id each time", () => {
    const { model, el } = mount(runsPayload(rows));
    button(el, '["a"]', "cancel").click();
    button(el, '["c"]', "retry").click();
    const sent = calls(model);
    expect(sent).toEqual([
      { type: "call", id: expect.any(Number), fn: "cancel", args: { run_id: "a" } },
      { type: "call", id: expect.any(Number), fn: "retry", args: { run_id: "c" } },
    ]);
    expect(Number.isInteger(sent[0]!.id)).toBe(true);
    expect(sent[1]!.id).not.toBe(sent[0]!.id);
  });

  it("disables the button until the reply to that call, and does not call twice", () => {
    const { model, el } = mount(runsPayload(rows));
    const cancel = button(el, '["a"]', "cancel");
    cancel.click();
    expect(cancel.disabled).toBe(true);
    cancel.click();
    cancel.dispatchEvent(new MouseEvent("click")); // even if a host fires it on a disabled button
    expect(calls(model)).toHaveLength(1);
    expect(button(el, '["b"]', "cancel").disabled).toBe(false);

    const { id } = calls(model)[0]!;
    model.message({ type: "reply", id: id + 1, ok: true, result: null }); // not ours
    expect(cancel.disabled).toBe(true);
    model.message({ type: "reply", id, ok: true, result: "running" });
    expect(cancel.disabled).toBe(false);
    expect(el.querySelector(".rxnb-call-error")).toBeNull();
    // The reply is not taken for an update.
    expect(el.querySelector(".rxnb-live")!.getAttribute("data-version")).toBe("1");
    expect(model.sent.filter((m) => (m as { type: string }).type === "resync")).toEqual([]);
  });

  it("keeps the button disabled when its row is redrawn before the reply", () => {
    const { model, el } = mount(runsPayload(rows));
    button(el, '["a"]', "cancel").click();
    model.message(diff(1, { changed: [runRow("a", "running", { progress: { done: 1, total: 2, message: "" } })] }));
    const redrawn = button(el, '["a"]', "cancel");
    expect(redrawn.disabled).toBe(true);
    model.message({ type: "reply", id: calls(model)[0]!.id, ok: true, result: null });
    expect(redrawn.disabled).toBe(false);
  });

  it("that fails shows `type: message` above the table, replaced by the next, dismissable", () => {
    const { model, el } = mount(runsPayload(rows));
    button(el, '["a"]', "cancel").click();
    model.message({
      type: "reply",
      id: calls(model)[0]!.id,
      ok: false,
      error: { type: "RunNotFoundError", message: "no run has id 'a'" },
    });
    const line = el.querySelector<HTMLElement>(".rxnb-call-error")!;
    expect(line.hidden).toBe(false);
    expect(line.querySelector(".rxnb-call-error-text")!.textContent).toBe("RunNotFoundError: no run has id 'a'");
    expect(line.compareDocumentPosition(el.querySelector("table")!) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
    expect(button(el, '["a"]', "cancel").disabled).toBe(false);

    button(el, '["c"]', "retry").click();
    model.message({ type: "reply", id: calls(model)[1]!.id, ok: false, error: { type: "ValueError", message: "bad" } });
    expect(el.querySelectorAll(".rxnb-call-error")).toHaveLength(1);
    expect(line.querySelector(".rxnb-call-error-text")!.textContent).toBe("ValueError: bad");

    line.querySelector<HTMLButtonElement>(".rxnb-call-error-close")!.click();
    expect(line.hidden).toBe(true);
  });

  it("answered after its view is gone changes nothing and throws nothing", () => {
    const { model, el, disposeViews } = mount(runsPayload(rows));
    button(el, '["a"]', "cancel").click();
    disposeViews[0]!();
    model.message({ type: "reply", id: calls(model)[0]!.id, ok: false, error: { type: "E", message: "m" } });
    expect(el.querySelector(".rxnb-call-error")).toBeNull();
  });

  it("in one view does not disable another view's button", () => {
    const { model, els } = mount(runsPayload(rows), FUNCTIONS, 2);
    button(els[0]!, '["a"]', "cancel").click();
    expect(button(els[1]!, '["a"]', "cancel").disabled).toBe(false);
    expect(calls(model)).toHaveLength(1);
  });
});

describe("sorting", () => {
  it("ignores the actions column, which stays last", () => {
    const { el } = mount(runsPayload(rows));
    const head = el.querySelector<HTMLElement>(".rxnb-actions-head")!;
    expect(head.hasAttribute("data-col")).toBe(false);
    expect(head.querySelector("button")).toBeNull();
    head.click();
    expect([...el.querySelectorAll("thead th")].some((th) => th.hasAttribute("aria-sort"))).toBe(false);
    const order = () => [...el.querySelectorAll("tbody tr")].map((tr) => tr.getAttribute("data-key"));
    expect(order()).toEqual(['["a"]', '["b"]', '["c"]', '["d"]', '["e"]']);

    el.querySelector<HTMLButtonElement>('th[data-col="status"] button')!.click();
    expect(order()).toEqual(['["e"]', '["c"]', '["b"]', '["a"]', '["d"]']);
    for (const tr of el.querySelectorAll("tbody tr")) expect(tr.lastElementChild!.className).toBe("rxnb-actions");
    expect(buttons(el)['["e"]']).toEqual(["retry"]);
  });
});

describe("store strings", () => {
  it("in labels, row values and error replies stay text", () => {
    const evil = "<img src=x onerror=alert(1)>";
    const action = { ...RUN_ACTIONS[1]!, label: evil, when: null };
    const { model, el } = mount(runsPayload([runRow(evil, "failed")], { actions: [action] }));
    const retry = el.querySelector<HTMLButtonElement>("button.rxnb-action")!;
    expect(retry.textContent).toBe(evil);
    retry.click();
    expect(calls(model)[0]!.args).toEqual({ run_id: evil });
    model.message({ type: "reply", id: calls(model)[0]!.id, ok: false, error: { type: evil, message: evil } });
    expect(el.querySelector(".rxnb-call-error-text")!.textContent).toBe(`${evil}: ${evil}`);
    expect(el.querySelectorAll("img, script")).toHaveLength(0);
  });
});
