import { afterEach, describe, expect, it, vi } from "vitest";
import { CONFIRM_MS } from "./chat-input";
import type { CallMessage } from "./protocol";
import {
  CHAT,
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

function input(el: HTMLElement): HTMLTextAreaElement {
  return el.querySelector<HTMLTextAreaElement>("form.rxnb-chat-form textarea.rxnb-chat-input")!;
}

function sendButton(el: HTMLElement): HTMLButtonElement {
  return el.querySelector<HTMLButtonElement>("form.rxnb-chat-form button.rxnb-chat-send")!;
}

function optimistic(el: HTMLElement): HTMLElement[] {
  return [...el.querySelectorAll<HTMLElement>(".rxnb-msg.rxnb-optimistic")];
}

const hello = message(1, "user", "Hello", { status: null });
const answer = message(2, "assistant", "Hi!", { status: "done" });

afterEach(() => {
  document.body.replaceChildren();
  vi.useRealTimers();
});

describe("the input", () => {
  it("is a form with a textarea and a send button, disabled while blank", () => {
    const { el } = mount(chatPayload([hello]));
    expect(input(el).placeholder).toBe("Message");
    expect(sendButton(el).disabled).toBe(true);
    type(el, "  \n ");
    expect(sendButton(el).disabled).toBe(true);
    type(el, "Hi");
    expect(sendButton(el).disabled).toBe(false);
  });

  it("Enter sends send.fn with send.args and the text, and clears the input", () => {
    const { model, el } = mount(chatPayload([hello]));
    type(el, "What is 2 + 2?");
    const event = press(el);
    expect(event.defaultPrevented).toBe(true);
    expect(calls(model)).toEqual([
      { type: "call", id: expect.any(Number), fn: "send", args: { thread_id: "t1", text: "What is 2 + 2?" } },
    ]);
    expect(input(el).value).toBe("");
    expect(sendButton(el).disabled).toBe(true);
  });

  it("Shift+Enter is a newline, not a send; blank text sends nothing", () => {
    const { model, el } = mount(chatPayload([hello]));
    type(el, "line one");
    expect(press(el, { shiftKey: true }).defaultPrevented).toBe(false);
    type(el, "   ");
    press(el);
    expect(calls(model)).toEqual([]);
  });

  it("does not send while an input method is composing", () => {
    const { model, el } = mount(chatPayload([hello]));
    type(el, "にほん");
    press(el, { isComposing: true });
    expect(calls(model)).toEqual([]);
  });

  it("keeps its keys from the notebook's shortcuts", () => {
    const { el } = mount(chatPayload([hello]));
    const outside = vi.fn();
    el.addEventListener("keydown", outside);
    press(el, { key: "a" });
    press(el, { shiftKey: true });
    expect(outside).not.toHaveBeenCalled();
    expect(el.querySelector("form")!.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
  });

  it("the send button submits the form", () => {
    const { model, el } = mount(chatPayload([hello]));
    type(el, "via the button");
    sendButton(el).click();
    expect(calls(model)[0]!.args).toEqual({ thread_id: "t1", text: "via the button" });
  });

  it("puts the text under send.text_arg, over an arg of the same name", () => {
    const send = { fn: "send", args: { thread_id: "t9", prompt: "old" }, text_arg: "prompt" };
    const { model, el } = mount(chatPayload([hello], { chat: { ...CHAT, send } }));
    type(el, "new");
    press(el);
    expect(calls(model)[0]!.args).toEqual({ thread_id: "t9", prompt: "new" });
  });

  it("is hidden without send, or when send's function is not bound", () => {
    expect(mount(chatPayload([hello], { chat: { ...CHAT, send: null } })).el.querySelector("form")!.hidden).toBe(true);
    const { el, model } = mount(chatPayload([hello]), { functions: ["cancel"] });
    expect(el.querySelector("form")!.hidden).toBe(true);
    type(el, "x");
    press(el);
    expect(calls(model)).toEqual([]);
  });
});

describe("optimistic messages", () => {
  function sent(el: HTMLElement, model: FakeModel, text: string): CallMessage {
    type(el, text);
    press(el);
    return calls(model).at(-1)!;
  }

  it("show at once, at the end of the log, marked sending", () => {
    const { model, el } = mount(chatPayload([hello, answer]));
    sent(el, model, "And 3 + 3?");
    const [m] = optimistic(el);
    expect(m!.dataset.status).toBe("sending");
    expect(m!.hasAttribute("data-key")).toBe(false);
    expect(m!.querySelector(".rxnb-msg-text")!.textContent).toBe("And 3 + 3?");
    expect(m!.querySelector(".rxnb-badge")!.getAttribute("data-status")).toBe("sending");
    expect(el.querySelector(".rxnb-chat-log")!.lastElementChild).toBe(m);
  });

  it("go when the reply is ok and the row has come (row first)", () => {
    const { model, el } = mount(chatPayload([hello, answer]));
    const call = sent(el, model, "And 3 + 3?");
    model.message(diff(1, { inserted: [[2, message(3, "user", "And 3 + 3?", { status: null })]] }));
    expect(optimistic(el)).toHaveLength(1); // no reply yet
    // New rows go before the optimistic message, which stays last.
    expect(el.querySelector(".rxnb-chat-log")!.lastElementChild).toBe(optimistic(el)[0]);
    reply(model, call);
    expect(optimistic(el)).toHaveLength(0);
  });

  it("go when the reply is ok and the row has come (reply first)", () => {
    const { model, el } = mount(chatPayload([hello, answer]));
    const call = sent(el, model, "And 3 + 3?");
    reply(model, call);
    expect(optimistic(el)).toHaveLength(1);
    model.message(diff(1, { inserted: [[2, message(4, "assistant", "", { status: "pending" })]] }));
    expect(optimistic(el)).toHaveLength(1); // not a user row with that text
    model.message(diff(2, { inserted: [[2, message(3, "user", "And 3 + 3?", { status: null })]] }));
    expect(optimistic(el)).toHaveLength(0);
  });

  it("are not taken for a row with the same text that was held when sent", () => {
    const { model, el } = mount(chatPayload([hello, answer]));
    const call = sent(el, model, "Hello");
    reply(model, call);
    expect(optimistic(el)).toHaveLength(1);
    model.message(diff(1, { inserted: [[2, message(3, "user", "Hello", { status: null })]] }));
    expect(optimistic(el)).toHaveLength(0);
  });

  it("the same text sent twice waits for two rows", () => {
    const { model, el } = mount(chatPayload([hello]));
    const first = sent(el, model, "again");
    const second = sent(el, model, "again");
    reply(model, first);
    reply(model, second);
    model.message(diff(1, { inserted: [[1, message(3, "user", "again", { status: null })]] }));
    expect(optimistic(el)).toHaveLength(1);
    model.message(diff(2, { inserted: [[2, message(4, "user", "again", { status: null })]] }));
    expect(optimistic(el)).toHaveLength(0);
  });

  it(`go ${CONFIRM_MS / 1000} s after the ok reply if no row comes`, () => {
    vi.useFakeTimers();
    const { model, el } = mount(chatPayload([hello]));
    const call = sent(el, model, "lost?");
    vi.advanceTimersByTime(CONFIRM_MS * 2); // no reply: it stays
    expect(optimistic(el)).toHaveLength(1);
    reply(model, call);
    vi.advanceTimersByTime(CONFIRM_MS - 1);
    expect(optimistic(el)).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(optimistic(el)).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("the row coming first cancels the timer", () => {
    vi.useFakeTimers();
    const { model, el } = mount(chatPayload([hello]));
    const call = sent(el, model, "quick");
    reply(model, call);
    expect(vi.getTimerCount()).toBe(1);
    model.message(diff(1, { inserted: [[1, message(3, "user", "quick", { status: null })]] }));
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a failed send stays, marked failed with the error, until dismissed", () => {
    vi.useFakeTimers();
    const { model, el } = mount(chatPayload([hello]));
    const call = sent(el, model, "into the void");
    reply(model, call, false);
    vi.advanceTimersByTime(CONFIRM_MS * 2);
    const [m] = optimistic(el);
    expect(m!.dataset.status).toBe("failed");
    expect(m!.querySelector(".rxnb-msg-error")!.textContent).toBe("ValueError: thread is closed");
    expect(m!.querySelector(".rxnb-badge")!.getAttribute("data-status")).toBe("failed");
    // A row with its text does not take its place: it was never sent.
    model.message(diff(1, { inserted: [[1, message(3, "user", "into the void", { status: null })]] }));
    expect(optimistic(el)).toHaveLength(1);
    m!.querySelector<HTMLButtonElement>("button.rxnb-msg-dismiss")!.click();
    expect(optimistic(el)).toHaveLength(0);
  });

  it("are per view: another view of the model does not show them", () => {
    const model = new FakeModel(chatPayload([hello]), "", FUNCTIONS);
    const widget = createWidget();
    widget.initialize({ model: model.proxy() });
    const els = [0, 1].map(() => document.body.appendChild(document.createElement("div")));
    for (const el of els) widget.render({ model: model.proxy(), el });
    for (const el of els) expect(el.querySelector(".rxnb-live")!.getAttribute("data-kind")).toBe("chat");
    type(els[0]!, "only here");
    press(els[0]!);
    expect(optimistic(els[0]!)).toHaveLength(1);
    expect(optimistic(els[1]!)).toHaveLength(0);
    model.message(diff(1, { inserted: [[1, message(3, "user", "only here", { status: null })]] }));
    for (const el of els) expect(el.querySelectorAll(".rxnb-msg[data-key]")).toHaveLength(2);
  });
});

