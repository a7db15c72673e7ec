import { afterEach, describe, expect, it, vi } from "vitest";
import { argsPreview, PREVIEW_CHARS, prettyArgs } from "./chat-tool";
import { normalizePayload, type ChatView, type Json, type Row } from "./protocol";
import { CHAT, CHAT_COLUMNS, chatPayload, diff, message, mountView, replyTo, sentCalls } from "./testing";

// What an agent's chat sends: the usual columns, the tool call's, details and notes.
const COLUMNS = [...CHAT_COLUMNS, "tool_name", "arguments", "approval", "call_id", "rx_detail", "rx_note"];
const column = (name: string): number => COLUMNS.indexOf(name);
const [TEXT, STATUS, ARGS, APPROVAL, NOTE] = ["content", "status", "arguments", "approval", "rx_note"].map(column) as [
  number,
  number,
  number,
  number,
  number,
];

const TOOL_CHAT: ChatView = {
  ...CHAT,
  detail: "rx_detail",
  note: "rx_note",
  tool: { name: "tool_name", arguments: "arguments", approval: "approval", call: "call_id" },
  approve: { fn: "approve", arg: "call_id" },
};
const FUNCTIONS = ["send", "cancel", "approve"];
const { approve: _approve, ...withoutApprove } = TOOL_CHAT;
const { tool: _tool, ...withoutTool } = TOOL_CHAT;

interface ToolRow {
  name?: string;
  args?: string;
  approval?: string | null;
  call?: string;
  result?: string;
  status?: string;
  error?: string | null;
  detail?: string | null;
  note?: string | null;
}

/** A tool call's row in `COLUMNS` order. */
function toolRow(id: number, fields: ToolRow = {}): Row {
  return [
    ...message(id, "tool", fields.result ?? "", { status: fields.status ?? "done", error: fields.error ?? null }),
    fields.name ?? "search",
    fields.args ?? '{"query": "rxnb"}',
    fields.approval ?? null,
    fields.call ?? `call_${id}`,
    fields.detail ?? null,
    fields.note ?? null,
  ];
}

/** Another message's row in `COLUMNS` order. */
function textRow(id: number, role: string, text: string, status = "done"): Row {
  return [...message(id, role, text, { status }), null, null, null, null, null, null];
}

function mount(rows: Row[], { chat = TOOL_CHAT, functions = FUNCTIONS } = {}) {
  // As the kernel sends it: the payload goes through normalizePayload like any.
  return mountView(chatPayload(rows, { columns: COLUMNS, chat }), { functions });
}

function card(el: HTMLElement, key: number) {
  const root = el.querySelector<HTMLElement>(`.rxnb-msg[data-key="[${key}]"]`);
  if (root === null) throw new Error(`no message ${key}`);
  const q = <E extends Element = HTMLElement>(selector: string) => root.querySelector<E>(selector);
  return {
    root,
    details: q<HTMLDetailsElement>("details.rxnb-tool-card")!,
    summary: q("details.rxnb-tool-card > summary")!,
    name: q(".rxnb-tool-name")!,
    preview: q(".rxnb-tool-preview")!,
    badge: q(".rxnb-msg-status .rxnb-badge"),
    args: q<HTMLPreElement>("pre.rxnb-tool-args")!,
    result: q(".rxnb-tool-result")!,
    error: q(".rxnb-msg-error")!,
    detail: q<HTMLDetailsElement>("details.rxnb-msg-detail")!,
    note: q(".rxnb-msg-note")!,
    approval: q(".rxnb-approval")!,
    state: q(".rxnb-approval-state")!,
    controls: q(".rxnb-approval-controls")!,
    approve: q<HTMLButtonElement>("button.rxnb-approve")!,
    deny: q<HTMLButtonElement>("button.rxnb-deny")!,
    noteInput: q<HTMLInputElement>("input.rxnb-approval-note")!,
    callError: q(".rxnb-approval-error")!,
  };
}

afterEach(() => {
  document.body.replaceChildren();
  vi.restoreAllMocks();
});

describe("a tool call's card", () => {
  it("shows the tool's name, a preview of its arguments and its status", () => {
    const { el } = mount([
      textRow(1, "user", "Find rxnb"),
      textRow(2, "assistant", ""),
      toolRow(3, { name: "search", args: '{"query": "rxnb", "limit": 5}', status: "running" }),
    ]);
    const c = card(el, 3);
    expect(c.root.matches('div.rxnb-msg.rxnb-tool[data-role="tool"][data-status="running"]')).toBe(true);
    expect(c.root.parentElement!.matches(".rxnb-chat-log")).toBe(true);
    expect(c.name.textContent).toBe("search");
    expect(c.preview.textContent).toBe('{"query": "rxnb", "limit": 5}');
    expect(c.badge!.getAttribute("data-status")).toBe("running");
    expect(c.badge!.textContent).toBe("running");
    expect(c.summary.contains(c.badge)).toBe(true);
    // Nothing to show: hidden.
    expect(c.result.hidden).toBe(true);
    expect(c.error.hidden).toBe(true);
    expect(c.detail.hidden).toBe(true);
    expect(c.note.hidden).toBe(true);
    expect(c.approval.hidden).toBe(true);
    expect(c.root.hasAttribute("data-approval")).toBe(false);
    // The other rows are messages as ever.
    expect(el.querySelectorAll(".rxnb-tool")).toHaveLength(1);
    expect(el.querySelector('[data-key="[1]"] .rxnb-msg-text')!.textContent).toBe("Find rxnb");
  });

  it.each([
    ["streaming", true],
    ["pending", true],
    ["running", true],
    ["waiting", true],
    ["done", false],
    ["failed", false],
    ["cancelled", false],
    ["denied", false],
  ])("a %s badge spins: %s", (status, spins) => {
    const { el } = mount([toolRow(1, { status })]);
    expect(card(el, 1).badge!.querySelector(".rxnb-spinner") !== null).toBe(spins);
  });

  it.each([
    ["streaming", null, true],
    ["waiting", "pending", true],
    ["failed", null, true],
    ["pending", null, false],
    ["running", null, false],
    ["done", null, false],
    ["cancelled", null, false],
    ["denied", "denied", false],
  ])("a %s card (approval %s) is open: %s", (status, approval, open) => {
    const { el } = mount([toolRow(1, { status, approval })]);
    expect(card(el, 1).details.open).toBe(open);
  });

  it("the preview is one line of at most PREVIEW_CHARS characters, ellipsized", () => {
    expect(argsPreview('{\n  "a":   1\n}')).toBe('{ "a": 1 }');
    const long = JSON.stringify({ query: "x".repeat(500) });
    expect(argsPreview(long)).toHaveLength(PREVIEW_CHARS);
    expect(argsPreview(long).endsWith("…")).toBe(true);
    expect(argsPreview(" ".repeat(1000) + "{}")).toBe("…");
    expect(argsPreview("")).toBe("");
    const { el } = mount([toolRow(1, { args: long })]);
    expect(card(el, 1).preview.textContent).toBe(argsPreview(long));
  });

  it("arguments growing by appended text are appended to the pre, never re-rendered", () => {
    const { model, el } = mount([toolRow(1, { args: "", status: "streaming" })]);
    const c = card(el, 1);
    expect(c.args.hidden).toBe(true);
    const node = c.args.firstChild;
    const parse = vi.spyOn(JSON, "parse");
    // 100,000 characters in 60 appends, as a model streams a large argument.
    const whole = JSON.stringify({ path: "notes.md", content: "lorem ipsum ".repeat(8400) }).slice(0, 100_000);
    const size = Math.ceil(whole.length / 60);
    let version = 1;
    for (let at = 0; at < whole.length; at += size) {
      model.message(diff(version++, { appended: [[[1], ARGS, whole.slice(at, at + size)]] }));
      expect(c.args.firstChild).toBe(node);
    }
    expect(version).toBe(61);
    expect(card(el, 1).root).toBe(c.root);
    expect(c.args.childNodes).toHaveLength(1);
    expect(c.args.textContent).toBe(whole);
    expect(c.args.hidden).toBe(false);
    expect(c.preview.textContent).toBe(argsPreview(whole));
    expect(parse).not.toHaveBeenCalled(); // no JSON parsed while streaming
  });

  it("once not streaming, arguments that parse show pretty-printed; others as they are", () => {
    const { model, el } = mount([toolRow(1, { args: '{"query": "rx', status: "streaming" }), toolRow(2, { args: "" })]);
    const c = card(el, 1);
    model.message(diff(1, { appended: [[[1], ARGS, 'nb", "tags": ["a"]}']] }));
    expect(c.args.textContent).toBe('{"query": "rxnb", "tags": ["a"]}');
    model.message(diff(2, { cells: [[[1], STATUS, "pending"]] }));
    expect(c.args.textContent).toBe('{\n  "query": "rxnb",\n  "tags": [\n    "a"\n  ]\n}');
    expect(c.preview.textContent).toBe('{"query": "rxnb", "tags": ["a"]}');
    model.message(diff(3, { cells: [[[1], ARGS, '{"query": oops']] }));
    expect(c.args.textContent).toBe('{"query": oops');
    expect(card(el, 2).args.hidden).toBe(true);
    expect(prettyArgs("[1,2]")).toBe("[\n  1,\n  2\n]");
    expect(prettyArgs("")).toBeNull();
  });

  it("a full (after a resync) with other arguments shows them anew", () => {
    const { model, el } = mount([toolRow(1, { args: '{"a": 1', status: "streaming" })]);
    const rows = [toolRow(1, { args: '{"b": 2', status: "streaming" })];
    model.message({ type: "full", payload: chatPayload(rows, { columns: COLUMNS, chat: TOOL_CHAT, version: 7 }) });
    expect(card(el, 1).args.textContent).toBe('{"b": 2');
  });

  it("the result, error and details show as text", () => {
    const evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>';
    const { el } = mount([
      toolRow(1, { name: evil, args: evil, result: evil, note: evil }),
      toolRow(2, { status: "failed", error: "ValueError: bad arguments", detail: `Traceback\n${evil}` }),
    ]);
    expect(el.querySelectorAll("img, script")).toHaveLength(0);
    const ok = card(el, 1);
    expect(ok.result.hidden).toBe(false);
    expect(ok.result.textContent).toBe(evil);
    expect(ok.name.textContent).toBe(evil);
    expect(ok.args.textContent).toBe(evil);
    expect(ok.note.textContent).toBe(evil);
    const failed = card(el, 2);
    expect(failed.details.open).toBe(true);
    expect(failed.error.hidden).toBe(false);
    expect(failed.error.textContent).toBe("ValueError: bad arguments");
    expect(failed.error.nextElementSibling).toBe(failed.detail);
    expect(failed.detail.hidden).toBe(false);
    expect(failed.detail.open).toBe(false);
    expect(failed.detail.querySelector("pre")!.textContent).toBe(`Traceback\n${evil}`);
  });

  it("a result that arrives is set once, and the card folds when done", () => {
    const { model, el } = mount([toolRow(1, { status: "streaming", args: '{"q": 1}' })]);
    const c = card(el, 1);
    expect(c.details.open).toBe(true);
    model.message(diff(1, { cells: [[[1], STATUS, "running"]] }));
    expect(c.details.open).toBe(false);
    model.message(diff(2, { cells: [[[1], TEXT, "3 results"], [[1], STATUS, "done"]] }));
    expect(c.result.textContent).toBe("3 results");
    expect(c.result.hidden).toBe(false);
    expect(c.badge).not.toBe(card(el, 1).badge);
    expect(card(el, 1).badge!.textContent).toBe("done");
    expect(c.root.dataset.status).toBe("done");
  });

  it("a card the reader toggled stays as they left it across updates", () => {
    const { model, el } = mount([toolRow(1, { status: "streaming" }), toolRow(2, { status: "done" })]);
    const streaming = card(el, 1);
    const done = card(el, 2);
    streaming.summary.click(); // folds it
    done.summary.click(); // opens it
    expect(streaming.details.open).toBe(false);
    expect(done.details.open).toBe(true);
    model.message(diff(1, { appended: [[[1], ARGS, " "]] }));
    model.message(diff(2, { cells: [[[1], STATUS, "waiting"], [[1], APPROVAL, "pending"]] }));
    model.message(diff(3, { cells: [[[2], NOTE, "ran again"], [[2], STATUS, "failed"]] }));
    model.message(diff(4, { cells: [[[2], STATUS, "done"]] }));
    expect(streaming.details.open).toBe(false);
    expect(done.details.open).toBe(true);
    // ...but the decision waiting for the reader shows outside the folded card.
    expect(streaming.approval.hidden).toBe(false);
    expect(streaming.controls.hidden).toBe(false);
    expect(streaming.details.contains(streaming.approval)).toBe(false);
  });

  it("a toggle event that follows our own opening does not count as the reader's", async () => {
    const { model, el } = mount([toolRow(1, { status: "running" })]);
    const c = card(el, 1);
    model.message(diff(1, { cells: [[[1], STATUS, "failed"]] }));
    expect(c.details.open).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 5)); // jsdom fires `toggle` in a task
    model.message(diff(2, { cells: [[[1], STATUS, "done"]] }));
    expect(c.details.open).toBe(false);
  });

  it("an update the card does not show leaves its DOM alone", () => {
    const { model, el } = mount([toolRow(1, { result: "ok", args: '{"a": 1}' })]);
    const c = card(el, 1);
    const nodes = [c.args.firstChild, c.result.firstChild, c.name.firstChild, c.preview.firstChild, c.badge];
    model.message(diff(1, { inserted: [[1, textRow(2, "assistant", "Done.")]] }));
    model.message(diff(2, { cells: [[[2], STATUS, "done"]] }));
    expect([c.args.firstChild, c.result.firstChild, c.name.firstChild, c.preview.firstChild, card(el, 1).badge]).toEqual(
      nodes,
    );
  });
});

describe("approval", () => {
  const waiting = (fields: ToolRow = {}) => toolRow(1, { status: "waiting", approval: "pending", ...fields });

  it("pending: waiting for approval, with a note input, Approve and Deny", () => {
    const { el } = mount([waiting()]);
    const c = card(el, 1);
    expect(c.root.dataset.approval).toBe("pending");
    expect(c.approval.hidden).toBe(false);
    expect(c.state.textContent).toBe("waiting for approval");
    expect(c.controls.hidden).toBe(false);
    expect([c.approve.textContent, c.deny.textContent]).toEqual(["Approve", "Deny"]);
    expect([c.approve.disabled, c.deny.disabled, c.noteInput.disabled]).toEqual([false, false, false]);
    expect(c.callError.hidden).toBe(true);
  });

  it("Approve calls approve with the call id, approved and the note", () => {
    const { model, el } = mount([waiting({ call: "call_abc" })]);
    const c = card(el, 1);
    c.noteInput.value = "fine, go ahead";
    c.approve.click();
    expect(sentCalls(model)).toEqual([
      {
        type: "call",
        id: expect.any(Number),
        fn: "approve",
        args: { call_id: "call_abc", approved: true, note: "fine, go ahead" },
      },
    ]);
  });

  it("Deny without a note sends an empty one", () => {
    const { model, el } = mount([waiting()]);
    card(el, 1).deny.click();
    expect(sentCalls(model)[0]!.args).toEqual({ call_id: "call_1", approved: false, note: "" });
  });

  it("both buttons are disabled while the call is in flight, even across updates", () => {
    const { model, el } = mount([waiting()]);
    const c = card(el, 1);
    c.approve.click();
    c.approve.click();
    c.deny.click();
    expect(sentCalls(model)).toHaveLength(1);
    expect([c.approve.disabled, c.deny.disabled]).toEqual([true, true]);
    model.message(diff(1, { cells: [[[1], NOTE, "someone looks"]] }));
    expect([c.approve.disabled, c.deny.disabled]).toEqual([true, true]);
    replyTo(model, sentCalls(model)[0]!);
    expect([c.approve.disabled, c.deny.disabled]).toEqual([false, false]);
    expect(c.callError.hidden).toBe(true);
    model.message(diff(2, { cells: [[[1], APPROVAL, "approved"], [[1], STATUS, "running"]] }));
    expect(c.controls.hidden).toBe(true);
    expect(c.state.textContent).toBe("approved");
  });

  it("a failed call shows its error next to the buttons, until the next decision", () => {
    const { model, el } = mount([waiting()]);
    const c = card(el, 1);
    c.approve.click();
    replyTo(model, sentCalls(model)[0]!, false);
    expect(c.callError.hidden).toBe(false);
    expect(c.callError.getAttribute("role")).toBe("alert");
    expect(c.callError.textContent).toBe("ValueError: thread is closed");
    expect(c.approval.contains(c.callError)).toBe(true);
    expect(el.querySelector(".rxnb-call-error")).toBeNull();
    expect(c.approve.disabled).toBe(false);
    c.deny.click();
    expect(c.callError.hidden).toBe(true);
  });

  it.each([
    ["approved", "running", "approved", "looks fine"],
    ["denied", "denied", "denied", "denied: a new message was sent"],
  ])("%s: the line says so, with the note", (approval, status, line, note) => {
    const { el } = mount([toolRow(1, { approval, status, note })]);
    const c = card(el, 1);
    expect(c.root.dataset.approval).toBe(approval);
    expect(c.approval.hidden).toBe(false);
    expect(c.state.textContent).toBe(line);
    expect(c.controls.hidden).toBe(true);
    expect(c.note.hidden).toBe(false);
    expect(c.note.textContent).toBe(note);
    expect(c.details.contains(c.note)).toBe(false); // readable with the card folded
  });

  it("no buttons without approve, or when its function is not bound: only the waiting line", () => {
    for (const { el } of [
      mount([waiting()], { chat: withoutApprove }),
      mount([waiting()], { functions: ["send", "cancel"] }),
    ]) {
      const c = card(el, 1);
      expect(c.state.textContent).toBe("waiting for approval");
      expect(c.controls.hidden).toBe(true);
      c.approve.click();
    }
    expect(document.querySelectorAll(".rxnb-tool")).toHaveLength(2);
  });

  it("buttons and note are disabled once the kernel side is gone", () => {
    const { model, el, view } = mount([waiting()]);
    const c = card(el, 1);
    view.setConnection("disconnected");
    expect([c.approve.disabled, c.deny.disabled, c.noteInput.disabled]).toEqual([true, true, true]);
    c.approve.click();
    expect(sentCalls(model)).toEqual([]);
  });

  it("the view's cleanup forgets a decision in flight", () => {
    const { model, el, view } = mount([waiting()]);
    card(el, 1).approve.click();
    view.dispose();
    expect(() => replyTo(model, sentCalls(model)[0]!, false)).not.toThrow();
  });
});

describe("plain chats and the chat field", () => {
  it("without a tool part, a tool row is a message as ever", () => {
    const { el } = mount([toolRow(1, { result: "42" })], { chat: withoutTool });
    expect(el.querySelector(".rxnb-tool, details.rxnb-tool-card")).toBeNull();
    const msg = el.querySelector<HTMLElement>('.rxnb-msg[data-key="[1]"]')!;
    expect(msg.dataset.role).toBe("tool");
    expect(msg.querySelector(".rxnb-msg-text")!.textContent).toBe("42");
  });

  it("a row whose role changes to or from tool gets the right block", () => {
    const { model, el } = mount([textRow(1, "assistant", "x")]);
    model.message(diff(1, { cells: [[[1], 1, "tool"]] }));
    expect(el.querySelector('[data-key="[1]"]')!.matches(".rxnb-tool")).toBe(true);
    model.message(diff(2, { cells: [[[1], 1, "user"]] }));
    expect(el.querySelector('[data-key="[1]"]')!.matches(".rxnb-tool")).toBe(false);
    expect(el.querySelectorAll(".rxnb-msg")).toHaveLength(1);
  });

  it("an assistant message with no text shows its status and usage, no empty text block", () => {
    const rows = [
      [...message(1, "assistant", "", { status: "done", usage: { total_tokens: 20 } }), null, null, null, null, null, null],
      toolRow(2),
    ];
    const { el } = mount(rows);
    const msg = el.querySelector<HTMLElement>('.rxnb-msg[data-key="[1]"]')!;
    expect(msg.querySelector<HTMLElement>(".rxnb-msg-text")!.hidden).toBe(true);
    expect(msg.querySelector(".rxnb-badge")!.textContent).toBe("done");
    expect(msg.querySelector<HTMLElement>(".rxnb-msg-usage")!.textContent).toBe("20 tokens");
  });

  it("normalizePayload keeps a well-formed tool and approve; a malformed one is left out", () => {
    const chatOf = (extra: Record<string, Json | undefined>) =>
      normalizePayload({ ...chatPayload([], { columns: COLUMNS }), chat: { ...CHAT, ...extra } }).chat!;
    const full = chatOf({ tool: TOOL_CHAT.tool as unknown as Json, approve: TOOL_CHAT.approve as unknown as Json });
    expect(full.tool).toEqual(TOOL_CHAT.tool);
    expect(full.approve).toEqual(TOOL_CHAT.approve);
    const plain = chatOf({});
    expect("tool" in plain || "approve" in plain).toBe(false);
    expect(chatOf({ tool: null, approve: null })).toEqual(plain);
    expect(chatOf({ tool: { name: "tool_name", arguments: "arguments" } }).tool).toBeUndefined();
    expect(chatOf({ tool: { name: "n", arguments: "a", call: "c", approval: 3 } }).tool).toEqual({
      name: "n",
      arguments: "a",
      approval: null,
      call: "c",
    });
    expect(chatOf({ approve: { fn: "approve" } }).approve).toBeUndefined();
  });

  it("columns named in tool that the payload lacks read as null", () => {
    const { el } = mountView(
      chatPayload([message(1, "tool", "result")], {
        chat: { ...TOOL_CHAT, detail: null, note: null },
      }),
      { functions: FUNCTIONS },
    );
    const c = card(el, 1);
    expect(c.name.textContent).toBe("tool");
    expect(c.args.hidden).toBe(true);
    expect(c.approval.hidden).toBe(true);
    expect(c.result.textContent).toBe("result");
  });
});
