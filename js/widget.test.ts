import { afterEach, describe, expect, it, vi } from "vitest";
import { RESYNC_RETRY_MS } from "./state";
import { FakeKernel, FakeModel, diff, tablePayload } from "./testing";
import createWidgetDefault, { createWidget } from "./widget";

const a = [1, "user", "a"];
const b = [2, "assistant", "b"];

/** A model with `initialize` run and `views` views rendered, as anywidget would. */
function mount(payload: unknown, views = 2) {
  const model = new FakeModel(payload);
  const widget = createWidget();
  const disposeModel = widget.initialize({ model: model.proxy() });
  model.answerConnect();
  const els = Array.from({ length: views }, () => document.body.appendChild(document.createElement("div")));
  const disposeViews = els.map((el) => widget.render({ model: model.proxy(), el }));
  return { model, els, disposeModel, disposeViews };
}

function keys(el: HTMLElement): (string | null)[] {
  return [...el.querySelectorAll("tbody tr")].map((tr) => tr.getAttribute("data-key"));
}

function root(el: HTMLElement): HTMLElement {
  return el.querySelector<HTMLElement>(".rxnb-live")!;
}

afterEach(() => {
  document.body.replaceChildren();
});

it("is anywidget's per-model function form", () => {
  expect(createWidgetDefault).toBe(createWidget);
  const widget = createWidgetDefault();
  expect(typeof widget.initialize).toBe("function");
  expect(typeof widget.render).toBe("function");
});

describe("views of one model", () => {
  it("show the trait's payload, then stay in step through messages", () => {
    const { model, els } = mount(tablePayload([a]));
    for (const el of els) expect(keys(el)).toEqual(["[1]"]);

    model.message(diff(1, { inserted: [[1, b]] }));
    for (const el of els) {
      expect(keys(el)).toEqual(["[1]", "[2]"]);
      expect(root(el).dataset.version).toBe("2");
    }
  });

  it("ask for one resync on a gap, ignore updates until a full, then go on", () => {
    const { model, els } = mount(tablePayload([a]), 3);
    model.message(diff(5, { inserted: [[0, b]] })); // base 5, held 1: a gap
    model.message(diff(6, { inserted: [[0, b]] }));
    model.message(diff(1, { inserted: [[1, b]] })); // would apply, but we wait for the full
    expect(model.sent).toEqual([{ type: "resync", version: 1 }]);
    for (const el of els) {
      expect(keys(el)).toEqual(["[1]"]);
      expect(el.querySelector(".rxnb-status")!.getAttribute("data-status")).toBe("resyncing");
    }

    model.message({ type: "full", payload: tablePayload([a, b], { version: 7 }) });
    for (const el of els) {
      expect(keys(el)).toEqual(["[1]", "[2]"]);
      expect(el.querySelector(".rxnb-status")!.getAttribute("data-status")).toBe("live");
    }
    model.message(diff(7, { removed: [[1]] }));
    for (const el of els) expect(keys(el)).toEqual(["[2]"]);

    model.message(diff(20, {})); // a second gap asks again, once
    model.message(diff(21, {}));
    expect(model.sent).toEqual([
      { type: "resync", version: 1 },
      { type: "resync", version: 8 },
    ]);
  });

  it("ignore stale messages", () => {
    const { model, els } = mount(tablePayload([a, b], { version: 4 }));
    model.message(diff(3, { removed: [[1]] }));
    expect(keys(els[0]!)).toEqual(["[1]", "[2]"]);
    expect(model.sent).toEqual([]);
  });

  it("take a change of the payload trait as a full, which also ends a resync", () => {
    const { model, els } = mount(tablePayload([a]));
    model.message(diff(9, {}));
    model.setPayload(tablePayload([b], { version: 12, title: "other" }));
    for (const el of els) {
      expect(keys(el)).toEqual(["[2]"]);
      expect(el.querySelector(".rxnb-title")!.textContent).toBe("other");
    }
    model.message(diff(12, { inserted: [[0, a]] }));
    for (const el of els) expect(keys(el)).toEqual(["[1]", "[2]"]);
  });
});

describe("cleanup", () => {
  it("a view's cleanup removes only that view", () => {
    const { model, els, disposeViews } = mount(tablePayload([a]));
    disposeViews[0]!();
    expect(els[0]!.querySelector(".rxnb-live")).toBeNull();
    model.message(diff(1, { inserted: [[1, b]] }));
    expect(keys(els[1]!)).toEqual(["[1]", "[2]"]);
  });

  it("the model's cleanup stops listening to the model", () => {
    const { model, disposeModel, disposeViews } = mount(tablePayload([a]), 1);
    expect(model.listenerCount("msg:custom")).toBe(1);
    disposeViews[0]!();
    disposeModel();
    expect(model.listenerCount("msg:custom")).toBe(0);
    expect(model.listenerCount("change:payload")).toBe(0);
  });
});

it("renders and updates without initialize, on the view's own state", () => {
  const model = new FakeModel(tablePayload([a]));
  const el = document.body.appendChild(document.createElement("div"));
  const dispose = createWidget().render({ model: model.proxy(), el });
  model.message(diff(1, { inserted: [[1, b]] }));
  expect(keys(el)).toEqual(["[1]", "[2]"]);
  dispose();
  expect(model.listenerCount("msg:custom")).toBe(0);
});

describe("the static snapshot beside the live view", () => {
  const id = "rxnb-snapshot-" + "0123456789abcdef".repeat(2);

  function snapshotOutput(): HTMLElement {
    const output = document.body.appendChild(document.createElement("div"));
    output.className = "jp-OutputArea-child";
    output.innerHTML = `<div class="rxnb-snapshot ${id}">3 rows</div>`;
    return output.firstElementChild as HTMLElement;
  }

  it("is hidden while a view shows, and back when the last view goes", () => {
    const snapshot = snapshotOutput();
    const model = new FakeModel(tablePayload([a]), id);
    const widget = createWidget();
    widget.initialize({ model: model.proxy() });
    const first = widget.render({ model: model.proxy(), el: document.body.appendChild(document.createElement("div")) });
    const second = widget.render({ model: model.proxy(), el: document.body.appendChild(document.createElement("div")) });
    expect(getComputedStyle(snapshot).display).toBe("none");
    first();
    expect(getComputedStyle(snapshot).display).toBe("none");
    second();
    expect(getComputedStyle(snapshot).display).not.toBe("none");
    expect(document.head.querySelectorAll("style[data-rxnb-snapshot]").length).toBe(0);
  });

  it("ignores a snapshot id that is not one rxnb makes", () => {
    const model = new FakeModel(tablePayload([a]), "x} body { display: none");
    createWidget().render({ model: model.proxy(), el: document.body.appendChild(document.createElement("div")) });
    expect(document.head.querySelectorAll("style").length).toBe(0);
  });
});

describe("a page that (re)connects", () => {
  /** A model as a host restores it on a page: `initialize`, one view, no answer yet. */
  function restore(payload: unknown) {
    const model = new FakeModel(payload);
    const widget = createWidget();
    widget.initialize({ model: model.proxy() });
    const el = document.body.appendChild(document.createElement("div"));
    widget.render({ model: model.proxy(), el });
    const status = () => el.querySelector(".rxnb-status")!;
    return { model, el, status };
  }

  afterEach(() => {
    vi.useRealTimers();
  });

  it("asks whether the version it holds is current, and is not live until told", () => {
    const { model, status } = restore(tablePayload([a], { version: 4 }));
    expect(model.sent).toEqual([{ type: "resync", version: 4 }]);
    expect(status().getAttribute("data-status")).toBe("confirming");
    expect(status().textContent).toBe("connecting…");
    model.message({ type: "current", version: 4 });
    expect(status().getAttribute("data-status")).toBe("live");
  });

  it("a replayed old state (marimo after a reload) is replaced by the kernel's full", () => {
    const { model, el, status } = restore(tablePayload([], { version: 1 }));
    expect(keys(el)).toEqual([]);
    expect(status().getAttribute("data-status")).toBe("confirming"); // never shown as live
    model.message({ type: "full", payload: tablePayload([a, b], { version: 57 }) });
    expect(keys(el)).toEqual(["[1]", "[2]"]);
    expect(status().getAttribute("data-status")).toBe("live");
  });

  it("an update built on the version held confirms it; one that is not makes it resync", () => {
    const current = restore(tablePayload([a], { version: 3 }));
    current.model.message(diff(3, { inserted: [[1, b]] })); // a busy kernel's update, 3 -> 4
    expect(keys(current.el)).toEqual(["[1]", "[2]"]);
    expect(current.status().getAttribute("data-status")).toBe("live");

    const old = restore(tablePayload([a], { version: 3 }));
    old.model.message(diff(40, { removed: [[1]] })); // the kernel is far ahead: a gap
    old.model.message(diff(3, { inserted: [[1, b]] })); // ignored until the full
    expect(old.status().getAttribute("data-status")).toBe("resyncing");
    expect(keys(old.el)).toEqual(["[1]"]);
    old.model.message({ type: "full", payload: tablePayload([b], { version: 42 }) });
    expect(keys(old.el)).toEqual(["[2]"]);
    expect(old.status().getAttribute("data-status")).toBe("live");
  });

  it("a current for another version does not confirm, and the ask is repeated", () => {
    vi.useFakeTimers();
    const { model, status } = restore(tablePayload([a], { version: 2 }));
    model.message({ type: "current", version: 9 });
    expect(status().getAttribute("data-status")).toBe("confirming");
    vi.advanceTimersByTime(RESYNC_RETRY_MS);
    expect(model.sent).toEqual([
      { type: "resync", version: 2 },
      { type: "resync", version: 2 },
    ]);
    model.message({ type: "current", version: 2 });
    expect(status().getAttribute("data-status")).toBe("live");
    vi.advanceTimersByTime(RESYNC_RETRY_MS * 10);
    expect(model.sent).toHaveLength(2); // answered: asks no more
  });

  it("a model whose kernel is gone asks nothing", () => {
    const model = new FakeModel(tablePayload([a]));
    model.kernel = new FakeKernel();
    model.kernel.dispose();
    const widget = createWidget();
    widget.initialize({ model: model.proxy() });
    expect(model.sent).toEqual([]);
  });
});
