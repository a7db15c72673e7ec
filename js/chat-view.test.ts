import { afterEach, describe, expect, it, vi } from "vitest";
import { STICK_PX } from "./chat";
import {
  chatPayload,
  diff,
  FakeModel,
  message,
  mountView as mount,
  press,
  replyTo as reply,
  sentCalls as calls,
  typeIn as type,
} from "./testing";
import { createWidget } from "./widget";

const FUNCTIONS = ["send", "cancel"];

function optimistic(el: HTMLElement): HTMLElement[] {
  return [...el.querySelectorAll<HTMLElement>(".rxnb-msg.rxnb-optimistic")];
}

afterEach(() => {
  document.body.replaceChildren();
  vi.useRealTimers();
});

describe("auto-scroll", () => {
  /** Give the log a layout jsdom lacks: `height` px of `content()` px, scrollable. */
  function layout(log: HTMLElement, content: () => number, height = 400) {
    let top = 0;
    Object.defineProperty(log, "clientHeight", { configurable: true, get: () => height });
    Object.defineProperty(log, "scrollHeight", { configurable: true, get: () => content() });
    Object.defineProperty(log, "scrollTop", {
      configurable: true,
      get: () => top,
      set: (value: number) => {
        top = Math.max(0, Math.min(value, content() - height));
      },
    });
    return {
      get top() {
        return top;
      },
      /** The reader scrolls to `value`. */
      scroll(value: number) {
        log.scrollTop = value;
        log.dispatchEvent(new Event("scroll"));
      },
    };
  }

  let extra = 0;

  function setup() {
    const rows = [message(1, "user", "Hello"), message(2, "assistant", "Hi!", { status: "streaming" })];
    const mounted = mount(chatPayload(rows));
    const log = mounted.el.querySelector<HTMLElement>(".rxnb-chat-log")!;
    // Each message 300 px, plus 20 px per character of the streaming one.
    extra = 0;
    const content = () =>
      extra +
      300 * log.querySelectorAll(".rxnb-msg").length +
      20 * (log.querySelector('[data-key="[2]"] .rxnb-msg-text')?.textContent?.length ?? 0);
    return { ...mounted, log, scroller: layout(log, content), content };
  }

  it("keeps the log at its bottom while new text comes", () => {
    const { model, motion, scroller, content } = setup();
    model.message(diff(1, { appended: [[[2], 2, " How are you?"]] }));
    motion.run(500);
    expect(scroller.top).toBe(content() - 400);
    model.message(diff(2, { inserted: [[2, message(3, "user", "fine")]] }));
    expect(scroller.top).toBe(content() - 400);
  });

  it("stays put once the reader scrolls up, and follows again at the bottom", () => {
    const { model, motion, scroller, content } = setup();
    model.message(diff(1, { appended: [[[2], 2, " How"]] }));
    motion.run(500);
    scroller.scroll(100);
    model.message(diff(2, { appended: [[[2], 2, " are you?"]] }));
    motion.run(500);
    expect(scroller.top).toBe(100);
    // Back down to within STICK_PX of the bottom: following again.
    scroller.scroll(content() - 400 - STICK_PX);
    model.message(diff(3, { appended: [[[2], 2, " Well?"]] }));
    motion.run(500);
    expect(scroller.top).toBe(content() - 400);
  });

  it("our own scroll landing short (content grew before its event) does not stop following", () => {
    const { model, log, scroller, content } = setup();
    model.message(diff(1, { inserted: [[2, message(3, "user", "a")]] }));
    // Content grows with no update (a late layout): the event of our scroll to the
    // bottom now reads 300 px short of it.
    extra = 300;
    log.dispatchEvent(new Event("scroll"));
    model.message(diff(2, { inserted: [[3, message(4, "user", "b")]] }));
    expect(scroller.top).toBe(content() - 400);
  });

  it("sending scrolls to the bottom, even when scrolled up", () => {
    const { el, scroller, content } = setup();
    scroller.scroll(0);
    type(el, "hey");
    press(el);
    expect(scroller.top).toBe(content() - 400);
  });
});

describe("store strings", () => {
  const evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>';

  it("in user text, roles, statuses and errors stay text", () => {
    const { el } = mount(
      chatPayload([
        message(1, evil, evil, { status: evil, error: evil }),
        message(2, "user", evil, { status: null }),
      ]),
    );
    expect(el.querySelectorAll("img, script")).toHaveLength(0);
    const user = el.querySelector('[data-key="[2]"] .rxnb-msg-text')!;
    expect(user.textContent).toBe(evil);
    expect(el.querySelector('[data-key="[1]"] .rxnb-msg-role')!.textContent).toBe(evil);
    expect(el.querySelector('[data-key="[1]"] .rxnb-badge')!.textContent).toBe(evil);
    expect(el.querySelector('[data-key="[1]"] .rxnb-msg-error')!.textContent).toBe(evil);
  });

  it("in assistant markdown are sanitized, also while streaming", () => {
    const { model, el, motion } = mount(chatPayload([message(2, "assistant", "x ", { status: "streaming" })]));
    const pieces = ["<img src=x ", "onerror=alert(1)>", " [link](javascript:alert(2)) <scr", "ipt>alert(3)</script>"];
    for (const [i, piece] of pieces.entries()) {
      model.message(diff(1 + i, { appended: [[[2], 2, piece]] }));
      motion.frame();
    }
    motion.run(1000);
    const body = el.querySelector('[data-key="[2]"] .rxnb-msg-text')!;
    expect(body.querySelectorAll("script, img[onerror]")).toHaveLength(0);
    const attributes = [...body.querySelectorAll("*")].flatMap((node) =>
      [...node.attributes].map((a) => `${a.name}=${a.value}`),
    );
    expect(attributes.filter((a) => /^on|javascript:/i.test(a))).toEqual([]);
    expect([...body.querySelectorAll("a")].map((a) => a.textContent)).toContain("link");
  });

  it("in a sent text and its error stay text", () => {
    const { model, el } = mount(chatPayload([]));
    type(el, evil);
    press(el);
    reply(model, calls(model)[0]!, false);
    model.message({ type: "reply", id: calls(model)[0]!.id, ok: false, error: { type: evil, message: evil } });
    expect(el.querySelectorAll("img, script")).toHaveLength(0);
    expect(optimistic(el)[0]!.querySelector(".rxnb-msg-text")!.textContent).toBe(evil);
  });
});

describe("cleanup", () => {
  it("cancels the frame, the timers and the calls in flight", () => {
    vi.useFakeTimers();
    const { model, motion, el, view } = mount(chatPayload([message(2, "assistant", "a", { status: "streaming" })]));
    model.message(diff(1, { appended: [[[2], 2, " lot more"]] }));
    type(el, "one");
    press(el);
    type(el, "two");
    press(el);
    el.querySelector<HTMLButtonElement>("button.rxnb-abort")!.click();
    reply(model, calls(model)[0]!); // "one" waits for its row: a timer
    expect(motion.pending).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    view.dispose();
    expect(motion.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(el.querySelector(".rxnb-live")).toBeNull();
    // Late replies find no one.
    expect(() => {
      reply(model, calls(model)[1]!, false);
      reply(model, calls(model)[2]!, false);
    }).not.toThrow();
    expect(el.childElementCount).toBe(0);
  });

  it("via the widget: a view's cleanup leaves no frame behind", () => {
    const frames = new Set<number>();
    const request = vi.spyOn(window, "requestAnimationFrame").mockImplementation((callback) => {
      const id = frames.size + 1;
      frames.add(id);
      void callback;
      return id;
    });
    const cancel = vi.spyOn(window, "cancelAnimationFrame").mockImplementation((id) => frames.delete(id));
    const model = new FakeModel(chatPayload([message(2, "assistant", "a", { status: "streaming" })]), "", FUNCTIONS);
    const widget = createWidget();
    widget.initialize({ model: model.proxy() });
    const el = document.body.appendChild(document.createElement("div"));
    const dispose = widget.render({ model: model.proxy(), el });
    model.message(diff(1, { appended: [[[2], 2, " more"]] }));
    expect(frames.size).toBe(1);
    dispose();
    expect(frames.size).toBe(0);
    request.mockRestore();
    cancel.mockRestore();
  });
});
