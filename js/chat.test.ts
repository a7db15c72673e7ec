import { afterEach, describe, expect, it } from "vitest";
import { formatCost, usageText } from "./chat-message";
import type { Payload, Row } from "./protocol";
import { CHAT, CHAT_COLUMNS, chatPayload, diff, message, mountView, replyTo, sentCalls } from "./testing";

const mount = mountView;
const calls = sentCalls;
const reply = replyTo;

function msg(el: HTMLElement, key: number): HTMLElement {
  const found = el.querySelector<HTMLElement>(`.rxnb-msg[data-key="[${key}]"]`);
  if (found === null) throw new Error(`no message ${key}`);
  return found;
}

function text(el: HTMLElement, key: number): HTMLElement {
  return msg(el, key).querySelector<HTMLElement>(".rxnb-msg-text")!;
}

/** The text a message shows (markdown's block elements end in a newline). */
function shown(el: HTMLElement, key: number): string {
  return text(el, key).textContent!.trim();
}

function keys(el: HTMLElement): (string | null)[] {
  return [...el.querySelectorAll(".rxnb-chat-log > .rxnb-msg")].map((m) => m.getAttribute("data-key"));
}

const hello = message(1, "user", "Hello", { status: null });
const streaming = message(2, "assistant", "Hi! I", { status: "streaming" });

afterEach(() => {
  document.body.replaceChildren();
});

describe("rendering", () => {
  it("shows a chat instead of the table: one block per row, in order", () => {
    const { el, q } = mount(
      chatPayload([
        message(0, "system", "Be brief."),
        hello,
        message(3, "assistant", "**Hi**, how can I help?", { usage: { total_tokens: 1234, cost: 0.0012 } }),
        message(4, "tool", "42"),
      ]),
    );
    expect(q(".rxnb-live").dataset.kind).toBe("chat");
    expect(q(".rxnb-live").contains(q("div.rxnb-chat"))).toBe(true);
    expect(el.querySelector("table")).toBeNull();
    expect(q(".rxnb-count").hidden).toBe(true);
    expect(keys(el)).toEqual(["[0]", "[1]", "[3]", "[4]"]);
    expect([...el.querySelectorAll(".rxnb-msg")].map((m) => m.getAttribute("data-role"))).toEqual([
      "system",
      "user",
      "assistant",
      "tool",
    ]);
    expect(msg(el, 3).querySelector(".rxnb-msg-role")!.textContent).toBe("assistant");
    expect(text(el, 3).querySelector("strong")!.textContent).toBe("Hi");
    expect(text(el, 3).classList.contains("rxnb-markdown")).toBe(true);
    expect(msg(el, 3).querySelector<HTMLElement>(".rxnb-msg-usage")!.textContent).toBe("1,234 tokens · $0.0012");
    expect(msg(el, 1).querySelector<HTMLElement>(".rxnb-msg-usage")!.hidden).toBe(true);
    expect(msg(el, 0).querySelector(".rxnb-msg-role")!.textContent).toBe("system");
  });

  it("user, system and tool text is text, not markdown", () => {
    const { el } = mount(chatPayload([message(1, "user", "**not bold**\n\n- x"), message(2, "tool", "# no")]));
    expect(text(el, 1).textContent).toBe("**not bold**\n\n- x");
    expect(text(el, 1).children).toHaveLength(0);
    expect(text(el, 2).textContent).toBe("# no");
  });

  it("statuses: a badge, spinning while pending or streaming", () => {
    const { el } = mount(
      chatPayload([
        message(1, "assistant", "", { status: "pending" }),
        message(2, "assistant", "x", { status: "streaming" }),
        message(3, "assistant", "x", { status: "done" }),
        message(4, "assistant", "x", { status: "cancelled" }),
      ]),
    );
    const badge = (k: number) => msg(el, k).querySelector(".rxnb-msg-status .rxnb-badge")!;
    for (const [k, status, spins] of [
      [1, "pending", true],
      [2, "streaming", true],
      [3, "done", false],
      [4, "cancelled", false],
    ] as const) {
      expect(msg(el, k).dataset.status).toBe(status);
      expect(badge(k).getAttribute("data-status")).toBe(status);
      expect(badge(k).textContent).toBe(status);
      expect(badge(k).querySelector(".rxnb-spinner") !== null).toBe(spins);
    }
  });

  it("a failed message shows its error under the text", () => {
    const { el } = mount(
      chatPayload([message(2, "assistant", "Partial", { status: "failed", error: "RateLimitError: slow down" })]),
    );
    const error = msg(el, 2).querySelector<HTMLElement>(".rxnb-msg-error")!;
    expect(error.hidden).toBe(false);
    expect(error.textContent).toBe("RateLimitError: slow down");
    expect(text(el, 2).compareDocumentPosition(error) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
  });

  it("without status, usage or error columns, messages still show", () => {
    const chat = { ...CHAT, status: null, usage: null, error: null, role: null };
    const { el } = mount(chatPayload([[1, "user", "hi", "x", null, null]], { chat }));
    expect(msg(el, 1).dataset.status).toBe("");
    expect(msg(el, 1).dataset.role).toBe("");
    expect(msg(el, 1).querySelector(".rxnb-badge")).toBeNull();
    expect(text(el, 1).textContent).toBe("hi");
  });

  it("shows the error banner above the dimmed chat, like any kind", () => {
    const { q } = mount(chatPayload([hello], { error: { type: "OperationalError", message: "locked" } }));
    expect(q(".rxnb-live").dataset.state).toBe("error");
    expect(q(".rxnb-error").hidden).toBe(false);
  });
});

describe("usage", () => {
  it.each([
    { usage: { total_tokens: 12, cost: null }, shown: "12 tokens" },
    { usage: { total_tokens: 1, estimated: true }, shown: "~1 token" },
    { usage: { prompt_tokens: 10, completion_tokens: 5, estimated: true, cost: 0.5 }, shown: "~15 tokens · $0.5" },
    { usage: JSON.stringify({ total_tokens: 3, cost: 2.5 }), shown: "3 tokens · $2.50" },
    { usage: { cost: 0.00001234 }, shown: "<$0.0001" },
    { usage: {}, shown: null },
    { usage: "not json", shown: null },
    { usage: null, shown: null },
  ])("$usage reads $shown", ({ usage, shown }) => {
    expect(usageText(usage)).toBe(shown);
  });

  it("costs", () => {
    expect(formatCost(0.0012)).toBe("$0.0012");
    expect(formatCost(0.01234)).toBe("$0.012");
    expect(formatCost(0)).toBe("$0");
    expect(formatCost(12.345)).toBe("$12.35");
  });
});

describe("updates", () => {
  it("touch only the messages a diff changed", () => {
    const { model, el } = mount(chatPayload([hello, streaming]));
    const first = msg(el, 1);
    const firstText = text(el, 1).firstChild;
    const second = msg(el, 2);
    model.message(diff(1, { appended: [[[2], 2, " can"]] }));
    model.message(diff(2, { inserted: [[2, message(3, "user", "more")]] }));
    expect(msg(el, 1)).toBe(first);
    expect(text(el, 1).firstChild).toBe(firstText);
    expect(msg(el, 2)).toBe(second);
    expect(keys(el)).toEqual(["[1]", "[2]", "[3]"]);
    model.message(diff(3, { removed: [[1]] }));
    expect(keys(el)).toEqual(["[2]", "[3]"]);
    expect(first.isConnected).toBe(false);
  });

  it("a full with the same chat keeps the blocks; another chat field rebuilds them", () => {
    const { model, el } = mount(chatPayload([hello, streaming]));
    const first = msg(el, 1);
    model.message({ type: "full", payload: chatPayload([hello, streaming], { version: 5 }) });
    expect(msg(el, 1)).toBe(first);
    const chat = { ...CHAT, placeholder: "Ask" };
    model.message({ type: "full", payload: chatPayload([hello, streaming], { version: 6, chat }) });
    expect(msg(el, 1)).not.toBe(first);
    expect(el.querySelector<HTMLTextAreaElement>("textarea")!.placeholder).toBe("Ask");
  });

  it("a full without chat shows the table again", () => {
    const { model, el, motion } = mount(chatPayload([hello, streaming]));
    model.message(diff(1, { appended: [[[2], 2, " can help"]] }));
    const payload: Payload = { ...chatPayload([hello], { version: 9 }) };
    delete payload.chat;
    model.message({ type: "full", payload });
    expect(el.querySelector(".rxnb-chat")).toBeNull();
    expect(el.querySelector("table.rxnb-table")).not.toBeNull();
    expect(motion.pending).toBe(0); // the chat's frame went with it
  });
});

describe("smooth text", () => {
  it("text held when first shown shows at once (a reload)", () => {
    const long = "word ".repeat(400);
    const { el, motion } = mount(chatPayload([hello, message(2, "assistant", long, { status: "streaming" })]));
    expect(shown(el, 2)).toBe(long.trim());
    expect(text(el, 2).dataset.revealed).toBe("true");
    expect(text(el, 1).dataset.revealed).toBe("true");
    expect(motion.pending).toBe(0);
  });

  it("appended text is revealed over frames, then marked revealed", () => {
    const { model, el, motion } = mount(chatPayload([hello, streaming]));
    const more = " can help with that. ".repeat(5);
    model.message(diff(1, { appended: [[[2], 2, more]] }));
    // Not yet: the text shows on the next frames, a little at a time.
    expect(shown(el, 2)).toBe("Hi! I");
    expect(text(el, 2).dataset.revealed).toBeUndefined();
    const lengths: number[] = [];
    for (let i = 0; i < 30 && motion.pending > 0; i++) {
      motion.frame();
      lengths.push(shown(el, 2).length);
    }
    expect(lengths[0]).toBeGreaterThan(0);
    expect(lengths[0]).toBeLessThan(("Hi! I" + more).length);
    expect(new Set(lengths).size).toBeGreaterThan(5);
    expect(shown(el, 2)).toBe(("Hi! I" + more).trim());
    expect(text(el, 2).dataset.revealed).toBe("true");
    expect(motion.pending).toBe(0);
  });

  it("renders the markdown at most once per frame, however many updates came", () => {
    const { model, el, motion } = mount(chatPayload([hello, streaming]));
    const before = text(el, 2).firstChild;
    for (let v = 1; v <= 3; v++) model.message(diff(v, { appended: [[[2], 2, " more"]] }));
    expect(text(el, 2).firstChild).toBe(before);
    expect(motion.pending).toBe(1);
    motion.frame();
    expect(text(el, 2).firstChild).not.toBe(before);
  });

  it("reveals the rest within 0.3 s once the reply is done", () => {
    const { model, el, motion } = mount(chatPayload([hello, streaming]));
    // Updates a second apart: 5000 characters would take a second at that rate.
    model.message(diff(1, { appended: [[[2], 2, " x"]] }));
    motion.run(1000);
    motion.time += 1000;
    const more = " x" + "x".repeat(5000);
    model.message(diff(2, { appended: [[[2], 2, more.slice(2)]] }));
    motion.run(48);
    expect(shown(el, 2).length).toBeLessThan(2000);
    model.message(diff(3, { changed: [message(2, "assistant", "Hi! I" + more, { status: "done" })] }));
    motion.run(280);
    expect(shown(el, 2).length).toBeLessThan(("Hi! I" + more).length);
    motion.run(32);
    expect(shown(el, 2)).toBe("Hi! I" + more);
    expect(text(el, 2).dataset.revealed).toBe("true");
  });

  it("under prefers-reduced-motion shows new text at once", () => {
    const { model, el, motion } = mount(chatPayload([hello, streaming]), { reduced: true });
    model.message(diff(1, { appended: [[[2], 2, " can help with that, at length."]] }));
    motion.frame();
    expect(shown(el, 2)).toBe("Hi! I can help with that, at length.");
    expect(text(el, 2).dataset.revealed).toBe("true");
    expect(motion.pending).toBe(0);
  });

  it("text that was replaced, not added to, shows at once", () => {
    const { model, el, motion } = mount(chatPayload([hello, streaming]));
    model.message(diff(1, { changed: [message(2, "assistant", "Something else entirely", { status: "streaming" })] }));
    motion.frame();
    expect(shown(el, 2)).toBe("Something else entirely");
  });
});

describe("abort", () => {
  const abortButton = (el: HTMLElement, k: number) => msg(el, k).querySelector<HTMLButtonElement>("button.rxnb-abort");

  it("only on an assistant message that is pending or streaming", () => {
    const { el } = mount(
      chatPayload([
        hello,
        message(2, "assistant", "", { status: "pending" }),
        message(3, "assistant", "x", { status: "streaming" }),
        message(4, "assistant", "x", { status: "done" }),
        message(5, "user", "x", { status: "streaming" }),
      ]),
    );
    expect([1, 2, 3, 4, 5].map((k) => abortButton(el, k) !== null)).toEqual([false, true, true, false, false]);
  });

  it("not without cancel, or when cancel's function is not bound", () => {
    expect(abortButton(mount(chatPayload([streaming], { chat: { ...CHAT, cancel: null } })).el, 2)).toBeNull();
    expect(abortButton(mount(chatPayload([streaming]), { functions: ["send"] }).el, 2)).toBeNull();
  });

  it("calls cancel with the row's key, disabled until the reply", () => {
    const { model, el } = mount(chatPayload([hello, streaming]));
    const button = abortButton(el, 2)!;
    button.click();
    button.dispatchEvent(new MouseEvent("click"));
    expect(calls(model)).toEqual([{ type: "call", id: expect.any(Number), fn: "cancel", args: { message_id: 2 } }]);
    expect(button.disabled).toBe(true);
    model.message(diff(1, { appended: [[[2], 2, " was"]] }));
    expect(abortButton(el, 2)!.disabled).toBe(true);
    reply(model, calls(model)[0]!);
    expect(button.disabled).toBe(false);
    expect(el.querySelector(".rxnb-call-error")).toBeNull();
    model.message(diff(2, { changed: [message(2, "assistant", "Hi! I was", { status: "cancelled" })] }));
    expect(abortButton(el, 2)).toBeNull();
  });

  it("a failed reply shows its error above the log, dismissable", () => {
    const { model, el, q } = mount(chatPayload([hello, streaming]));
    abortButton(el, 2)!.click();
    reply(model, calls(model)[0]!, false);
    const line = q(".rxnb-call-error");
    expect(line.getAttribute("role")).toBe("alert");
    expect(q(".rxnb-call-error-text").textContent).toBe("ValueError: thread is closed");
    expect(line.nextElementSibling).toBe(q(".rxnb-chat-log"));
    expect(abortButton(el, 2)!.disabled).toBe(false);
    q<HTMLButtonElement>(".rxnb-call-error-close").click();
    expect(line.hidden).toBe(true);
  });
});

describe("error details and notes", () => {
  // What rx.chat sends: two more columns, named in the chat field.
  const columns = [...CHAT_COLUMNS, "rx_detail", "rx_note"];
  const DETAIL = 6;
  const NOTE = 7;
  const chat = { ...CHAT, detail: "rx_detail", note: "rx_note" };
  const trace = 'Traceback (most recent call last):\n  File "app.py", line 3, in generate\nRateLimitError: slow down';
  const failed = (detail: string | null, note: string | null = null): Row => [
    ...message(2, "assistant", "Partial", { status: "failed", error: "RateLimitError: slow down" }),
    detail,
    note,
  ];
  const history = (rows: Row[], version = 1) => chatPayload(rows, { columns, chat, version });
  const detailOf = (el: HTMLElement, k: number) =>
    msg(el, k).querySelector<HTMLDetailsElement>("details.rxnb-msg-detail");
  const noteOf = (el: HTMLElement, k: number) => msg(el, k).querySelector<HTMLElement>(".rxnb-msg-note");

  it("the details fold under the one-line error, closed, as text", () => {
    const { el } = mount(history([failed(trace)]));
    const error = msg(el, 2).querySelector<HTMLElement>(".rxnb-msg-error")!;
    expect(error.textContent).toBe("RateLimitError: slow down");
    const details = detailOf(el, 2)!;
    expect(details.hidden).toBe(false);
    expect(details.open).toBe(false);
    expect(error.nextElementSibling).toBe(details);
    expect(details.querySelector("summary")!.textContent).toBe("details");
    expect(details.querySelector("pre")!.textContent).toBe(trace);
  });

  it("no details without details text", () => {
    const { el } = mount(history([failed(null), [...message(3, "assistant", "x"), "", null]]));
    expect(detailOf(el, 2)).toBeNull();
    expect(detailOf(el, 3)).toBeNull();
  });

  it("an update that leaves the details alone keeps them, open if the reader opened them", () => {
    const { model, el } = mount(history([failed(trace)]));
    const details = detailOf(el, 2)!;
    details.open = true;
    model.message(diff(1, { cells: [[[2], NOTE, "resumed after the kernel restarted (attempt 2)"]] }));
    model.message(diff(2, { changed: [failed(trace, "resumed after the kernel restarted (attempt 2)")] }));
    model.message({ type: "full", payload: history([failed(trace, "resumed")], 9) });
    expect(detailOf(el, 2)).toBe(details);
    expect(details.open).toBe(true);
    // New details refill the same element; none left hide it.
    model.message(diff(9, { cells: [[[2], DETAIL, "Traceback: another"]] }));
    expect(detailOf(el, 2)).toBe(details);
    expect(details.querySelector("pre")!.textContent).toBe("Traceback: another");
    model.message(diff(10, { cells: [[[2], DETAIL, null]] }));
    expect(details.hidden).toBe(true);
  });

  it("the note is a line of its own, hidden without one, rewritten only when it changes", () => {
    const waiting = "interrupted (the kernel restarted); waiting to resume";
    const { model, el } = mount(
      history([
        [...message(1, "user", "hi", { status: null }), null, null],
        [...message(2, "assistant", "Hel", { status: "pending" }), null, waiting],
      ]),
    );
    expect(noteOf(el, 1)).toBeNull();
    const note = noteOf(el, 2)!;
    expect(note.hidden).toBe(false);
    expect(note.textContent).toBe(waiting);
    const line = note.firstChild;
    model.message(diff(1, { cells: [[[2], 3, "streaming"]] }));
    model.message(diff(2, { appended: [[[2], 2, "lo"]] }));
    expect(note.firstChild).toBe(line);
    model.message(diff(3, { cells: [[[2], NOTE, "resumed after the kernel restarted (attempt 2)"]] }));
    expect(noteOf(el, 2)).toBe(note);
    expect(note.textContent).toBe("resumed after the kernel restarted (attempt 2)");
    model.message(diff(4, { cells: [[[2], NOTE, ""]] }));
    expect(note.hidden).toBe(true);
    model.message(diff(5, { cells: [[[1], NOTE, "edited"]] }));
    expect(noteOf(el, 1)!.textContent).toBe("edited");
  });

  it("store strings in details and notes stay text", () => {
    const evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>';
    const { el } = mount(history([failed(evil, evil)]));
    expect(el.querySelectorAll("img, script")).toHaveLength(0);
    expect(detailOf(el, 2)!.querySelector("pre")!.textContent).toBe(evil);
    expect(noteOf(el, 2)!.textContent).toBe(evil);
  });

  it("a chat field without detail and note shows neither, even when the columns are there", () => {
    const { el } = mount(chatPayload([failed(trace, "resumed")], { columns }));
    const block = msg(el, 2);
    expect(block.querySelector("details, .rxnb-msg-note")).toBeNull();
    expect([...block.children].map((c) => c.className)).toEqual([
      "rxnb-msg-head",
      "rxnb-msg-text rxnb-markdown",
      "rxnb-msg-error",
      "rxnb-msg-usage",
    ]);
  });
});
