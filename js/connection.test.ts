import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ConnectionWatch, type Connection } from "./connection";
import { DISCONNECTED_TEXT } from "./render";
import { RESYNC_RETRY_MS } from "./state";
import {
  chatPayload,
  diff,
  FakeKernel,
  FakeModel,
  message,
  press,
  runRow,
  runsPayload,
  sentCalls,
  stepRow,
  tablePayload,
  timelinePayload,
  typeIn,
} from "./testing";
import { createWidget } from "./widget";

afterEach(() => {
  document.body.replaceChildren();
  document.head.replaceChildren();
  vi.useRealTimers();
});

/** A watch on a model whose widget manager holds `kernel`, and what it told. */
function watch(kernel: FakeKernel | null = new FakeKernel()) {
  const model = new FakeModel(tablePayload([]));
  model.kernel = kernel;
  const connection = new ConnectionWatch(model.proxy());
  const told: Connection[] = [];
  connection.subscribe((now) => told.push(now));
  return { model, kernel, connection, told };
}

describe("ConnectionWatch", () => {
  it("starts connected, and stays so while the kernel works", () => {
    const { kernel, connection, told } = watch();
    for (const status of ["busy", "idle", "starting", "unknown"]) kernel!.setStatus(status);
    expect(connection.state).toBe("connected");
    expect(told).toEqual([]);
  });

  it.each(["comm_live_update", "comm:close"])("%s on the model: gone (rules 1, 2)", (event) => {
    const { model, connection, told } = watch(null);
    model.trigger(event);
    expect(connection.state).toBe("disconnected");
    expect(told).toEqual(["disconnected"]);
  });

  it.each(["restarting", "autorestarting", "dead"])("kernel status %s: gone (rule 3)", (status) => {
    const { kernel, connection, told } = watch();
    kernel!.setStatus(status);
    expect(connection.state).toBe("disconnected");
    expect(told).toEqual(["disconnected"]);
  });

  it("a shutdown, which fires nothing on the model: the kernel disposed (rule 3)", () => {
    const { kernel, connection, told } = watch();
    kernel!.dispose();
    expect(connection.state).toBe("disconnected");
    expect(told).toEqual(["disconnected"]);
  });

  it("a model made after its kernel was disposed starts disconnected", () => {
    const kernel = new FakeKernel();
    kernel.dispose();
    expect(watch(kernel).connection.state).toBe("disconnected");
  });

  it("a restart (status, then comm_live_update twice) tells once, and stops watching (rule 4)", () => {
    const { model, kernel, connection, told } = watch();
    kernel!.setStatus("restarting");
    model.trigger("comm_live_update");
    model.trigger("comm_live_update");
    kernel!.setStatus("idle"); // the new kernel is up: the old model's comm is still gone
    expect(connection.state).toBe("disconnected");
    expect(told).toEqual(["disconnected"]);
    expect(model.listenerCount("comm_live_update")).toBe(0);
    expect(kernel!.statusChanged.slots).toBe(0);
    expect(kernel!.disposed.slots).toBe(0);
  });

  it("dispose stops watching", () => {
    const { model, kernel, connection, told } = watch();
    connection.dispose();
    expect(model.listenerCount("comm_live_update")).toBe(0);
    expect(model.listenerCount("comm:close")).toBe(0);
    expect(kernel!.statusChanged.slots).toBe(0);
    kernel!.dispose();
    expect(told).toEqual([]);
  });

  it("a widget manager whose kernel getter throws: only the model's events", () => {
    const model = new FakeModel(tablePayload([]));
    const proxy = model.proxy();
    Object.defineProperty(proxy, "widget_manager", {
      value: {
        get kernel(): never {
          throw new TypeError("Cannot read properties of null (reading 'sessionContext')");
        },
      },
    });
    const connection = new ConnectionWatch(proxy);
    expect(connection.state).toBe("connected");
    model.trigger("comm_live_update");
    expect(connection.state).toBe("disconnected");
  });
});

/** A model with `initialize` run and `views` views rendered, as anywidget would. */
function mount(payload: unknown, { views = 2, functions = ["send", "cancel", "retry"] } = {}) {
  const model = new FakeModel(payload, "", functions);
  model.kernel = new FakeKernel();
  const widget = createWidget();
  widget.initialize({ model: model.proxy() });
  model.answerConnect();
  const els = Array.from({ length: views }, () => document.body.appendChild(document.createElement("div")));
  for (const el of els) widget.render({ model: model.proxy(), el });
  return { model, kernel: model.kernel, els, widget };
}

function status(el: HTMLElement): HTMLElement {
  return el.querySelector<HTMLElement>(".rxnb-status")!;
}

function buttons(el: HTMLElement, selector: string): HTMLButtonElement[] {
  return [...el.querySelectorAll<HTMLButtonElement>(selector)];
}

describe("every view of a model whose kernel went", () => {
  it("says so in its header, instead of live; the content stays", () => {
    const { model, els } = mount(tablePayload([[1, "user", "hi"]]));
    for (const el of els) {
      expect(status(el).dataset.status).toBe("live");
      expect(el.querySelector(".rxnb-live")!.getAttribute("data-connection")).toBe("connected");
    }
    model.trigger("comm_live_update");
    for (const el of els) {
      expect(status(el).dataset.status).toBe("disconnected");
      expect(status(el).textContent).toBe(DISCONNECTED_TEXT);
      expect(el.querySelector(".rxnb-live")!.getAttribute("data-connection")).toBe("disconnected");
      expect(el.querySelector("tbody tr td[data-col='content']")!.textContent).toBe("hi");
    }
  });

  it("a view rendered after the kernel went starts disconnected", () => {
    const { kernel, widget } = mount(tablePayload([]), { views: 0 });
    kernel.dispose();
    const model = new FakeModel(tablePayload([]));
    const el = document.body.appendChild(document.createElement("div"));
    widget.render({ model: model.proxy(), el });
    expect(status(el).dataset.status).toBe("disconnected");
  });

  it("a runs view disables Cancel and Retry, and stops its elapsed clock", () => {
    vi.useFakeTimers();
    const started = Date.now() / 1000 - 5;
    const { model, els } = mount(
      runsPayload([runRow("a", "running", { started }), runRow("b", "failed", { started, finished: started + 1 })]),
      { views: 1 },
    );
    const el = els[0]!;
    const elapsed = () => el.querySelector("tr[data-key='[\"a\"]'] td[data-col='elapsed']")!.textContent;
    expect(buttons(el, "button.rxnb-action").map((b) => [b.dataset.action, b.disabled])).toEqual([
      ["cancel", false],
      ["retry", false],
    ]);
    model.trigger("comm_live_update");
    expect(buttons(el, "button.rxnb-action").map((b) => b.disabled)).toEqual([true, true]);
    buttons(el, "button.rxnb-action")[0]!.click();
    expect(sentCalls(model)).toEqual([]);
    const frozen = elapsed();
    vi.advanceTimersByTime(3000);
    expect(elapsed()).toBe(frozen);
  });

  it("a step timeline stops moving its going step", () => {
    vi.useFakeTimers();
    const start = Date.now() / 1000 - 5;
    const { model, els } = mount(timelinePayload([stepRow("r1", 0, "fetch", { start })]), { views: 1 });
    const duration = () => els[0]!.querySelector(".rxnb-tl-duration")!.textContent;
    const before = duration();
    vi.advanceTimersByTime(2000);
    expect(duration()).not.toBe(before); // going: redrawn each second
    model.trigger("comm_live_update");
    const frozen = duration();
    vi.advanceTimersByTime(3000);
    expect(duration()).toBe(frozen);
  });

  it("a chat disables Stop, the input and Send, and stops its spinners (CSS)", () => {
    const style = document.head.appendChild(document.createElement("style"));
    style.textContent = readFileSync("js/widget.css", "utf8");
    const { model, els } = mount(
      chatPayload([message(1, "user", "Hello"), message(2, "assistant", "Hi", { status: "streaming" })]),
      { views: 1 },
    );
    const el = els[0]!;
    const stop = el.querySelector<HTMLButtonElement>("button.rxnb-abort")!;
    const input = el.querySelector<HTMLTextAreaElement>("textarea.rxnb-chat-input")!;
    const send = el.querySelector<HTMLButtonElement>("button.rxnb-chat-send")!;
    const spinner = el.querySelector<HTMLElement>(".rxnb-msg .rxnb-spinner")!;
    typeIn(el, "still there?");
    expect([stop.disabled, input.disabled, send.disabled]).toEqual([false, false, false]);
    expect(getComputedStyle(spinner).display).not.toBe("none");

    model.kernel!.setStatus("restarting");
    expect([stop.disabled, input.disabled, send.disabled]).toEqual([true, true, true]);
    expect(input.value).toBe("still there?"); // what the reader typed is kept
    expect(getComputedStyle(spinner).display).toBe("none");
    press(el);
    stop.click();
    expect(sentCalls(model)).toEqual([]);
    expect(el.querySelector(".rxnb-msg[data-key='[2]'] .rxnb-msg-text")!.textContent!.trim()).toBe("Hi");
  });

  it("a view waiting for a resync stops asking", () => {
    vi.useFakeTimers();
    const { model, kernel, els } = mount(tablePayload([]), { views: 1 });
    model.message(diff(5, {})); // a gap: ask for a full
    expect(model.sent).toEqual([{ type: "resync", version: 1 }]);
    kernel.dispose();
    vi.advanceTimersByTime(RESYNC_RETRY_MS * 10);
    model.message(diff(9, {}));
    expect(model.sent).toEqual([{ type: "resync", version: 1 }]);
    expect(status(els[0]!).dataset.status).toBe("disconnected");
  });

  it("the cell run again: a new model's view is live", () => {
    const old = mount(tablePayload([]), { views: 1 });
    old.kernel.setStatus("restarting");
    old.kernel.setStatus("idle"); // the same kernel connection, restarted
    const model = new FakeModel(tablePayload([]));
    model.kernel = old.kernel;
    const widget = createWidget();
    widget.initialize({ model: model.proxy() });
    const el = document.body.appendChild(document.createElement("div"));
    widget.render({ model: model.proxy(), el });
    expect(status(el).dataset.status).toBe("confirming"); // asked the kernel
    model.answerConnect();
    expect(status(el).dataset.status).toBe("live");
    expect(status(old.els[0]!).dataset.status).toBe("disconnected");
  });
});
