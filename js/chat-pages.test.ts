import { afterEach, describe, expect, it, vi } from "vitest";
import { EARLIER_PX } from "./chat-pages";
import type { CallMessage, Row } from "./protocol";
import { CHAT, chatPayload, diff, message, mountView, sentCalls, type FakeModel } from "./testing";

const PAGED = { ...CHAT, earlier: { fn: "earlier" } };
const FUNCTIONS = ["send", "cancel", "earlier"];
const ROW_PX = 20;

function rows(from: number, to: number): Row[] {
  const out: Row[] = [];
  for (let id = from; id <= to; id++) out.push(message(id, id % 2 ? "user" : "assistant", `message ${id}`));
  return out;
}

/**
 * A layout jsdom lacks: every child of the log is `ROW_PX` high, the log 200 px; the
 * blocks' rects follow the scroll position, as a browser's do.
 */
function layout(log: HTMLElement) {
  let top = 0;
  const content = () => [...log.children].filter((c) => !(c as HTMLElement).hidden).length * ROW_PX;
  Object.defineProperty(log, "clientHeight", { configurable: true, get: () => 200 });
  Object.defineProperty(log, "scrollHeight", { configurable: true, get: () => content() });
  Object.defineProperty(log, "scrollTop", {
    configurable: true,
    get: () => top,
    set: (value: number) => {
      top = Math.max(0, Math.min(value, content() - 200));
    },
  });
  vi.spyOn(HTMLElement.prototype, "getBoundingClientRect").mockImplementation(function (this: HTMLElement) {
    const shown = [...log.children].filter((c) => !(c as HTMLElement).hidden);
    const y = shown.indexOf(this) * ROW_PX - top;
    return { top: y, bottom: y + ROW_PX, left: 0, right: 0, width: 0, height: ROW_PX, x: 0, y, toJSON: () => ({}) };
  });
  return {
    scrollTo(value: number) {
      log.scrollTop = value;
      log.dispatchEvent(new Event("scroll"));
    },
    get top() {
      return top;
    },
  };
}

function earlierCalls(model: FakeModel): CallMessage[] {
  return sentCalls(model).filter((c) => c.fn === "earlier");
}

/** The `i`th earlier call sent (it must have been). */
function nth(model: FakeModel, i: number): CallMessage {
  const call = earlierCalls(model)[i];
  if (call === undefined) throw new Error(`no earlier call ${i}`);
  return call;
}

function answer(model: FakeModel, call: CallMessage, result: unknown, ok = true): void {
  model.message(
    ok
      ? { type: "reply", id: call.id, ok: true, result }
      : { type: "reply", id: call.id, ok: false, error: { type: "RxnbError", message: "store closed" } },
  );
}

function mountPaged(functions = FUNCTIONS) {
  const view = mountView(chatPayload(rows(51, 100), { chat: PAGED }), { functions });
  const log = view.q(".rxnb-chat-log");
  return { ...view, log, scroll: layout(log) };
}

function keys(el: HTMLElement): string[] {
  return [...el.querySelectorAll(".rxnb-chat-log > .rxnb-msg")].map((m) => m.getAttribute("data-key")!);
}

afterEach(() => {
  document.body.replaceChildren();
  vi.restoreAllMocks();
});

describe("earlier pages", () => {
  it("scrolled to the top, asks once for the page before; its rows keep the view in place", () => {
    const { model, el, q, scroll } = mountPaged();
    scroll.scrollTo(500);
    expect(earlierCalls(model)).toHaveLength(0);
    scroll.scrollTo(EARLIER_PX);
    scroll.scrollTo(0); // still loading: not asked twice
    expect(earlierCalls(model)).toHaveLength(1);
    const call = nth(model, 0);
    expect(call.args).toEqual({});
    expect(q(".rxnb-chat-earlier").hidden).toBe(false);
    expect(q(".rxnb-chat-earlier").dataset.state).toBe("loading");
    answer(model, call, { done: false, rows: 50 });
    expect(q(".rxnb-chat-earlier").hidden).toBe(true);

    const firstShown = q('.rxnb-msg[data-key="[51]"]').getBoundingClientRect().top;
    model.message(diff(1, { inserted: rows(1, 50).map((row, i) => [i, row]) }));
    expect(keys(el)).toHaveLength(100);
    expect(keys(el).slice(0, 2)).toEqual(["[1]", "[2]"]);
    // What the reader saw stays where it was: the log scrolled down by the 50 new rows.
    expect(q('.rxnb-msg[data-key="[51]"]').getBoundingClientRect().top).toBe(firstShown);
    expect(scroll.top).toBe(50 * ROW_PX);

    scroll.scrollTo(0);
    answer(model, nth(model, 1), { done: true, rows: 0 });
    expect(q(".rxnb-chat-earlier").dataset.state).toBe("done");
    scroll.scrollTo(300);
    scroll.scrollTo(0);
    expect(earlierCalls(model)).toHaveLength(2); // the kernel said there is none before
  });

  it("a chat that is not paged, or whose earlier is not bound, never asks", () => {
    const plain = mountView(chatPayload(rows(1, 30)), { functions: FUNCTIONS });
    const log = plain.q(".rxnb-chat-log");
    layout(log).scrollTo(0);
    expect(earlierCalls(plain.model)).toHaveLength(0);
    expect(plain.el.querySelector(".rxnb-chat-earlier")).toBeNull();
    document.body.replaceChildren();

    const unbound = mountPaged(["send", "cancel"]);
    unbound.scroll.scrollTo(300);
    unbound.scroll.scrollTo(0);
    expect(earlierCalls(unbound.model)).toHaveLength(0);
    expect(unbound.el.querySelector(".rxnb-chat-earlier")).toBeNull();
  });

  it("a failed call shows its error; the next scroll to the top asks again", () => {
    const { model, q, scroll } = mountPaged();
    scroll.scrollTo(300);
    scroll.scrollTo(0);
    answer(model, nth(model, 0), null, false);
    expect(q(".rxnb-call-error-text").textContent).toBe("RxnbError: store closed");
    expect(q(".rxnb-chat-earlier").hidden).toBe(true);
    scroll.scrollTo(300);
    scroll.scrollTo(0);
    expect(earlierCalls(model)).toHaveLength(2);
  });

  it("a log too short to scroll asks by itself, until the kernel says there is none", () => {
    const view = mountView(chatPayload(rows(1, 3), { chat: PAGED }), { functions: FUNCTIONS });
    const log = view.q(".rxnb-chat-log");
    layout(log);
    view.model.message(diff(1, { changed: [message(3, "user", "message 3!")] }));
    answer(view.model, nth(view.model, 0), { done: true, rows: 0 });
    view.model.message(diff(2, { changed: [message(3, "user", "message 3?")] }));
    expect(earlierCalls(view.model)).toHaveLength(1);
  });

  it("new rows at the bottom while scrolled up do not move the view", () => {
    const { model, q, scroll } = mountPaged();
    scroll.scrollTo(200);
    scroll.scrollTo(100);
    const seen = q('.rxnb-msg[data-key="[60]"]').getBoundingClientRect().top;
    model.message(diff(1, { inserted: [[50, message(101, "user", "new")]] }));
    expect(q('.rxnb-msg[data-key="[60]"]').getBoundingClientRect().top).toBe(seen);
    expect(scroll.top).toBe(100);
  });
});
