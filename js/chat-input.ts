/**
 * A chat view's input: `form.rxnb-chat-form`, and the messages it sent that the rows do
 * not show yet (optimistic messages, per view).
 *
 * Responsibilities:
 * - the textarea: Enter sends, Shift+Enter is a newline; the send button is disabled
 *   while the text is blank; keys typed here are not notebook shortcuts;
 * - sending: a `call` of `send.fn` with `{...send.args, [send.text_arg]: text}`, the
 *   input cleared, and the text shown at once as `div.rxnb-msg.rxnb-optimistic` marked
 *   `sending` at the end of the log;
 * - removing it (rules below), or marking it `failed` with the error and a × button;
 * - once the kernel side is gone (connection.ts): the textarea and the button disabled,
 *   the text typed so far kept.
 *
 * Rules (docs/widget-protocol.md, "Send"):
 * 1. An optimistic message goes once its reply is `ok` and a user row with the same text
 *    (trimmed) is in the rows that was not held when it was sent. A row takes the place
 *    of one optimistic message only (the same text sent twice waits for two rows).
 * 2. It also goes `CONFIRM_MS` after the `ok` reply, whichever comes first.
 * 3. On an `ok: false` reply it stays, `failed`, with `type: message`, until dismissed.
 */
import type { Caller } from "./calls";
import { statusBadge } from "./formats";
import type { ChatView, ErrorInfo, Json, Reply } from "./protocol";

export const CONFIRM_MS = 3000;

/** A row of the chat, as the input matches its messages against them. */
export interface SentRow {
  id: string;
  role: string;
  text: string;
}

interface Optimistic {
  el: HTMLDivElement;
  text: string;
  /** The ids of the rows held when it was sent: none of them is its row (rule 1). */
  held: ReadonlySet<string>;
  ok: boolean;
  forget: (() => void) | null;
  timer: ReturnType<typeof setTimeout> | null;
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  return el;
}

export class ChatInput {
  readonly form = element("form", "rxnb-chat-form");
  readonly input = element("textarea", "rxnb-chat-input");
  readonly button = element("button", "rxnb-chat-send");
  readonly #log: HTMLElement;
  readonly #caller: Caller | null;
  readonly #onSent: () => void;
  #send: ChatView["send"] = null;
  #rows: SentRow[] = [];
  readonly #waiting = new Set<Optimistic>();
  /** Rows that already took an optimistic message's place (rule 1). */
  readonly #claimed = new Set<string>();
  #connected = true;

  /** Optimistic messages go at the end of `log`; `onSent` runs after each is added. */
  constructor(log: HTMLElement, caller: Caller | null, onSent: () => void) {
    this.#log = log;
    this.#caller = caller;
    this.#onSent = onSent;
    this.input.rows = 2;
    this.input.setAttribute("aria-label", "Message");
    this.button.type = "submit";
    this.button.textContent = "Send";
    this.button.disabled = true;
    // JupyterLab (Lumino) skips its shortcuts for keys typed inside this element.
    this.form.setAttribute("data-lm-suppress-shortcuts", "true");
    this.form.append(this.input, this.button);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#submit();
    });
    this.input.addEventListener("input", () => this.#showButton());
    this.input.addEventListener("keydown", (event) => this.#onKey(event));
  }

  /** The payload's `send` and placeholder; no input without a callable `send`. */
  configure(send: ChatView["send"], placeholder: string): void {
    const callable = send !== null && this.#caller !== null && this.#caller.functions.has(send.fn);
    this.#send = callable ? send : null;
    this.form.hidden = !callable;
    this.input.placeholder = placeholder;
    this.input.setAttribute("aria-label", placeholder || "Message");
  }

  /** Whether the kernel side is there to send to (false: input and button disabled). */
  setConnected(connected: boolean): void {
    this.#connected = connected;
    this.input.disabled = !connected;
    this.#showButton();
  }

  /** The rows now: the optimistic messages whose row came go (rule 1). */
  reconcile(rows: SentRow[]): void {
    this.#rows = rows;
    const ids = new Set(rows.map((row) => row.id));
    for (const id of this.#claimed) if (!ids.has(id)) this.#claimed.delete(id);
    for (const sent of this.#waiting) {
      if (!sent.ok) continue;
      const text = sent.text.trim();
      const row = rows.find(
        (row) =>
          (row.role === "user" || row.role === "") &&
          row.text.trim() === text &&
          !sent.held.has(row.id) &&
          !this.#claimed.has(row.id),
      );
      if (row === undefined) continue;
      this.#claimed.add(row.id);
      this.#drop(sent);
    }
  }

  /** Forget the calls in flight and stop the timers: the view is going away. */
  dispose(): void {
    for (const sent of this.#waiting) this.#drop(sent);
  }

  #onKey(event: KeyboardEvent): void {
    // Notebook front ends act on keys that reach them (Shift+Enter runs the cell).
    event.stopPropagation();
    // keyCode 229: a key that an input method (IME) is composing with.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    this.#submit();
  }

  #showButton(): void {
    this.button.disabled = !this.#connected || this.input.value.trim() === "";
  }

  #submit(): void {
    const send = this.#send;
    const text = this.input.value;
    if (send === null || this.#caller === null || !this.#connected || text.trim() === "") return;
    const args: Record<string, Json> = { ...send.args, [send.text_arg]: text };
    const sent: Optimistic = {
      el: this.#draw(text),
      text,
      held: new Set(this.#rows.map((row) => row.id)),
      ok: false,
      forget: null,
      timer: null,
    };
    this.#waiting.add(sent);
    this.#log.append(sent.el);
    this.input.value = "";
    this.#showButton();
    sent.forget = this.#caller.call(send.fn, args, (reply) => this.#settle(sent, reply));
    this.#onSent();
  }

  #settle(sent: Optimistic, reply: Reply): void {
    sent.forget = null;
    if (!reply.ok) {
      this.#fail(sent, reply.error); // rule 3
      return;
    }
    sent.ok = true;
    this.reconcile(this.#rows); // rule 1: the row may have come before the reply
    if (this.#waiting.has(sent)) sent.timer = setTimeout(() => this.#drop(sent), CONFIRM_MS); // rule 2
  }

  #drop(sent: Optimistic): void {
    sent.forget?.();
    if (sent.timer !== null) clearTimeout(sent.timer);
    sent.el.remove();
    this.#waiting.delete(sent);
  }

  /** `div.rxnb-msg.rxnb-optimistic`, laid out as a user message marked `sending`. */
  #draw(text: string): HTMLDivElement {
    const el = element("div", "rxnb-msg rxnb-optimistic");
    el.setAttribute("data-role", "user");
    el.setAttribute("data-status", "sending");
    const head = element("div", "rxnb-msg-head");
    const role = element("span", "rxnb-msg-role");
    role.textContent = "user";
    const status = element("span", "rxnb-msg-status");
    status.append(statusBadge("sending", true));
    head.append(role, status);
    const body = element("div", "rxnb-msg-text");
    body.textContent = text;
    body.setAttribute("data-revealed", "true");
    el.append(head, body);
    return el;
  }

  #fail(sent: Optimistic, error: ErrorInfo): void {
    const { el } = sent;
    el.setAttribute("data-status", "failed");
    el.querySelector(".rxnb-msg-status")?.replaceChildren(statusBadge("failed", false));
    const line = element("div", "rxnb-msg-error");
    line.textContent = `${error.type}: ${error.message}`;
    const dismiss = element("button", "rxnb-msg-dismiss");
    dismiss.type = "button";
    dismiss.textContent = "×";
    dismiss.setAttribute("aria-label", "Dismiss");
    dismiss.addEventListener("click", () => this.#drop(sent));
    el.querySelector(".rxnb-msg-head")?.append(dismiss);
    el.append(line);
  }
}
