/**
 * One message of a chat view: `div.rxnb-msg`, kept in step with its row.
 *
 * Responsibilities:
 * - the block's parts: `.rxnb-msg-role`, the status badge in `.rxnb-msg-status`,
 *   `button.rxnb-abort` while abortable, `.rxnb-msg-text`, `.rxnb-msg-error` (one line)
 *   with the failure's details folded under it (`details.rxnb-msg-detail`),
 *   `.rxnb-msg-usage` and `.rxnb-msg-note`; a row update touches only the parts that
 *   changed (a details element the reader opened stays open);
 * - the text: as text for every role but `assistant`, whose text is markdown (sanitized,
 *   markdown.ts), hidden while the row has none; revealed smoothly (smooth.ts) once the
 *   message is on screen, rendered at most once per animation frame (`frame`),
 *   `data-revealed="true"` once all shown;
 * - the usage line: `N tokens` (`~N` when estimated) and the cost.
 */
import { formatValue } from "./cells";
import { FileParts, type FileLoader } from "./file-part";
import { statusBadge } from "./formats";
import { renderMarkdown } from "./markdown";
import type { Json } from "./protocol";
import { cut, Reveal } from "./smooth";

/** Statuses of a reply still coming: their badge spins, and they may be aborted. */
export const LIVE_STATUSES: ReadonlySet<string> = new Set(["pending", "streaming", "waiting", "paused"]);

/** What a block shows of its row. */
export interface MessageFields {
  /** The row's key string (null: a keyless table). */
  key: string | null;
  /** The role, or "" when unknown. */
  role: string;
  text: string;
  status: string | null;
  usage: Json;
  error: string | null;
  /** The failure's details (a traceback), shown folded; null or "": none. */
  detail: string | null;
  /** A short line about the message's history (resumed, interrupted); null or "": none. */
  note: string | null;
  /** The abort call's arguments while the message can be aborted, else null. */
  abort: Record<string, Json> | null;
  /** The ids of the message's stored files, and how to fetch one (file-part.ts). */
  files?: string[];
  loadFile?: FileLoader | null;
}

/** What the chat view does for its blocks: the abort calls in flight, and making one. */
export interface AbortControl {
  /** Whether the kernel side is there to abort anything (connection.ts). */
  readonly connected: boolean;
  waiting(args: Record<string, Json>): boolean;
  abort(args: Record<string, Json>): void;
}

function isRecord(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `$0.0012`: two significant digits below a dollar, cents above. */
export function formatCost(cost: number): string {
  if (cost === 0) return "$0";
  if (cost < 0.0001) return "<$0.0001";
  if (cost < 1) return `$${Number(cost.toPrecision(2))}`;
  return `$${cost.toFixed(2)}`;
}

/**
 * The usage line: `1,234 tokens · $0.0012`, `~N tokens` when estimated; null when there
 * is nothing to tell. A string is read as the JSON it holds (a TEXT column).
 */
export function usageText(value: Json | undefined): string | null {
  let usage = value;
  if (typeof usage === "string") {
    try {
      usage = JSON.parse(usage) as Json;
    } catch {
      return null;
    }
  }
  if (!isRecord(usage)) return null;
  const { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total, cost } = usage;
  const tokens =
    typeof total === "number"
      ? total
      : typeof prompt === "number" && typeof completion === "number"
        ? prompt + completion
        : null;
  const parts: string[] = [];
  if (tokens !== null && Number.isFinite(tokens)) {
    const n = `${usage.estimated === true ? "~" : ""}${tokens.toLocaleString("en")}`;
    parts.push(`${n} ${tokens === 1 ? "token" : "tokens"}`);
  }
  if (typeof cost === "number" && Number.isFinite(cost) && cost >= 0) parts.push(formatCost(cost));
  return parts.length === 0 ? null : parts.join(" · ");
}

/** A new `tag` element with `className`. */
export function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  return el;
}

export class MessageBlock {
  readonly el = element("div", "rxnb-msg");
  /** The row last shown: an update with the same array (a diff left it alone) is skipped. */
  row: unknown = null;
  readonly #role = element("span", "rxnb-msg-role");
  readonly #status = element("span", "rxnb-msg-status");
  readonly #head = element("div", "rxnb-msg-head");
  readonly #text = element("div", "rxnb-msg-text");
  readonly #error = element("div", "rxnb-msg-error");
  readonly #usage = element("div", "rxnb-msg-usage");
  /**
   * Made when first needed, then only hidden or refilled: a chat without details or
   * notes keeps the DOM it always had, and a details element made again at each update
   * of the row would fold up under the reader who opened it.
   */
  #detail: { el: HTMLDetailsElement; text: HTMLPreElement } | null = null;
  #note: HTMLDivElement | null = null;
  #files: FileParts | null = null;
  readonly #control: AbortControl;
  #abort: { button: HTMLButtonElement; args: Record<string, Json> } | null = null;
  #fields: MessageFields;
  #reveal: Reveal;
  /** Characters of the text in the DOM now, or -1: render it on the next frame. */
  #rendered = -1;

  /** A message first shown: its text shows at once (smooth.ts rule 1). */
  constructor(fields: MessageFields, control: AbortControl, now: number) {
    this.#control = control;
    this.#fields = fields;
    this.#reveal = new Reveal(fields.text.length, now);
    this.#error.hidden = true;
    this.#usage.hidden = true;
    this.#head.append(this.#role, this.#status);
    this.el.append(this.#head, this.#text, this.#error, this.#usage);
    if (fields.key !== null) this.el.setAttribute("data-key", fields.key);
    this.#showRole();
    this.#showStatus();
    this.#showError();
    this.#showDetail();
    this.#showUsage();
    this.#showNote();
    this.#showAbort();
    this.#showFiles();
    this.#renderText();
  }

  /**
   * The row changed. Returns true if its text has more to reveal: the caller runs
   * `frame` on each animation frame until it returns false.
   */
  set(fields: MessageFields, now: number): boolean {
    const old = this.#fields;
    this.#fields = fields;
    if (fields.role !== old.role) {
      this.#showRole();
      this.#rendered = -1; // markdown or text: the other way now
    }
    if (fields.status !== old.status) this.#showStatus();
    if (fields.error !== old.error) this.#showError();
    if (fields.detail !== old.detail) this.#showDetail();
    if (fields.note !== old.note) this.#showNote();
    if (JSON.stringify(fields.usage) !== JSON.stringify(old.usage)) this.#showUsage();
    if (JSON.stringify(fields.abort) !== JSON.stringify(old.abort)) this.#showAbort();
    if (JSON.stringify(fields.files ?? []) !== JSON.stringify(old.files ?? [])) this.#showFiles();

    const live = fields.status !== null && LIVE_STATUSES.has(fields.status);
    if (fields.text !== old.text) {
      if (fields.text.startsWith(old.text)) {
        this.#reveal.update(fields.text.length, live, now);
      } else {
        // Not text added at the end (an edit, a full after a resync): no stream to follow.
        this.#reveal = new Reveal(fields.text.length, now);
      }
      this.#rendered = -1;
      this.#text.removeAttribute("data-revealed");
    } else {
      this.#reveal.update(fields.text.length, live, now);
    }
    return this.#rendered === -1 || !this.#reveal.done;
  }

  /**
   * One animation frame: reveal more text, rendering it if it changed. Returns whether
   * there is more to come (false: this block needs no more frames for now).
   */
  frame(now: number, reduced: boolean): { changed: boolean; more: boolean } {
    if (reduced) this.#reveal.skip(); // smooth.ts rule 4
    else this.#reveal.step(now);
    const changed = this.#reveal.shown !== this.#rendered;
    if (changed) this.#renderText();
    return { changed, more: !this.#reveal.done };
  }

  /** Enable the abort button unless its call waits or the kernel side is gone. */
  refreshAbort(): void {
    if (this.#abort === null) return;
    this.#abort.button.disabled = !this.#control.connected || this.#control.waiting(this.#abort.args);
  }

  #renderText(): void {
    const { text, role } = this.#fields;
    const shown = this.#reveal.shown;
    const visible = cut(text, shown);
    if (role === "assistant") {
      this.#text.classList.add("rxnb-markdown");
      this.#text.replaceChildren(renderMarkdown(visible));
    } else {
      this.#text.classList.remove("rxnb-markdown");
      this.#text.textContent = visible;
    }
    // No text (a reply that only asked for tools, one not begun): no empty block.
    this.#text.hidden = text === "";
    this.#rendered = shown;
    if (visible.length >= text.length) this.#text.setAttribute("data-revealed", "true");
    else this.#text.removeAttribute("data-revealed");
  }

  #showRole(): void {
    const { role } = this.#fields;
    this.el.setAttribute("data-role", role);
    this.#role.textContent = role;
    this.#role.hidden = role === "";
  }

  #showStatus(): void {
    const { status } = this.#fields;
    this.el.setAttribute("data-status", status ?? "");
    if (status === null) this.#status.replaceChildren();
    else this.#status.replaceChildren(statusBadge(status, LIVE_STATUSES.has(status)));
  }

  #showError(): void {
    const { error } = this.#fields;
    this.#error.textContent = error ?? "";
    this.#error.hidden = error === null || error === "";
  }

  /** The details, folded, right under the error line; hidden while there are none. */
  #showDetail(): void {
    const { detail } = this.#fields;
    const none = detail === null || detail === "";
    if (this.#detail === null) {
      if (none) return;
      const el = element("details", "rxnb-msg-detail");
      const summary = document.createElement("summary");
      summary.textContent = "details";
      const text = document.createElement("pre");
      el.append(summary, text);
      this.#error.after(el);
      this.#detail = { el, text };
    }
    this.#detail.text.textContent = detail ?? "";
    this.#detail.el.hidden = none;
  }

  /** The note, a quiet line at the message's foot; hidden while there is none. */
  #showNote(): void {
    const { note } = this.#fields;
    const none = note === null || note === "";
    if (this.#note === null) {
      if (none) return;
      this.#note = element("div", "rxnb-msg-note");
      this.#usage.after(this.#note);
    }
    this.#note.textContent = note ?? "";
    this.#note.hidden = none;
  }

  /** The message's files under its text (made when the first one comes). */
  #showFiles(): void {
    const { files = [], loadFile = null } = this.#fields;
    if (this.#files === null) {
      if (files.length === 0 || loadFile === null) return;
      this.#files = new FileParts(loadFile);
      this.#text.after(this.#files.el);
    }
    this.#files.show(files);
  }

  #showUsage(): void {
    const text = usageText(this.#fields.usage);
    this.#usage.textContent = text ?? "";
    this.#usage.hidden = text === null;
  }

  #showAbort(): void {
    const { abort } = this.#fields;
    if (abort === null) {
      this.#abort?.button.remove();
      this.#abort = null;
      return;
    }
    if (this.#abort === null) {
      const button = element("button", "rxnb-abort");
      button.type = "button";
      button.textContent = "Stop";
      button.title = "Stop this reply";
      button.addEventListener("click", () => {
        if (this.#abort !== null) this.#control.abort(this.#abort.args);
      });
      this.#head.append(button);
      this.#abort = { button, args: abort };
    }
    this.#abort.args = abort;
    this.refreshAbort();
  }
}

/** A cell as message text: strings as they are, null as nothing, anything else as JSON. */
export function cellText(value: Json | undefined): string {
  return value === null || value === undefined ? "" : formatValue(value);
}
