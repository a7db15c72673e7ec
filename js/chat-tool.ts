/**
 * One tool call of a chat view (a row whose role is "tool", when the `chat` field has a
 * `tool` part): `div.rxnb-msg.rxnb-tool`, a card kept in step with its row.
 *
 * Responsibilities:
 * - the card `details.rxnb-tool-card`: its `summary` holds the tool's name, a one-line
 *   preview of the arguments and the status badge; inside, the arguments
 *   (`pre.rxnb-tool-args`), the result (`.rxnb-tool-result`), the error line with its
 *   details folded under it;
 * - under the card, the files the tool returned (file-part.ts: images as images,
 *   anything else a download link), shown even while the card is folded;
 * - under those, the approval (`.rxnb-approval`: its state, and while it is pending
 *   and `approve` is callable, a note input with Approve and Deny buttons, and the error
 *   of a failed call) and the row's note (`.rxnb-msg-note`): outside the card, so that
 *   a card the reader folded never hides a decision waiting for them;
 * - open or folded: open while the call streams its arguments, waits for approval or
 *   failed, folded otherwise, until the reader toggles it: from then on it stays as
 *   the reader left it;
 * - a row update touches only the parts that changed.
 *
 * Rules:
 * 1. Everything from the row is text (`textContent`), never markup: tool output and
 *    model-written arguments stay inert.
 * 2. While the status is `streaming`, arguments that grew by text at their end are
 *    appended to the pre's text node (no re-render, no JSON parsing); any other change
 *    sets the text anew. Once the status is not `streaming`, arguments that parse as
 *    JSON are shown pretty-printed (parsed once per change), else as they are.
 * 3. The preview reads at most `PREVIEW_SCAN` characters of the arguments: its cost
 *    does not grow with them.
 */
import { element } from "./chat-message";
import { statusBadge } from "./formats";
import { FileParts, type FileLoader } from "./file-part";
import type { ErrorInfo, Json } from "./protocol";
import { cut } from "./smooth";

/** Statuses of a call still going: their badge spins. */
export const TOOL_LIVE: ReadonlySet<string> = new Set(["streaming", "pending", "running", "waiting"]);

/** Statuses whose card is open unless the reader toggled it. */
const OPEN_STATUSES: ReadonlySet<string> = new Set(["streaming", "waiting", "failed"]);

/** The preview's length, in characters (with the ellipsis). */
export const PREVIEW_CHARS = 80;

/** Rule 3: how much of the arguments the preview reads (whitespace runs fold to one space). */
const PREVIEW_SCAN = PREVIEW_CHARS * 4;

/** What the approval line says for each approval state; another string is shown as it is. */
const APPROVAL_TEXT: ReadonlyMap<string, string> = new Map([
  ["pending", "waiting for approval"],
  ["approved", "approved"],
  ["denied", "denied"],
]);

/** What a card shows of its row. */
export interface ToolFields {
  /** The row's key string (null: a keyless table). */
  key: string | null;
  /** The tool's name. */
  name: string;
  /** The arguments: JSON text as streamed (incomplete while `streaming`). */
  args: string;
  /** null, "pending", "approved" or "denied". */
  approval: string | null;
  /** The call id, as the row holds it: the approve call's argument. */
  call: Json;
  /** The tool's result text ("" until done). */
  result: string;
  status: string | null;
  error: string | null;
  /** The failure's details (a traceback), shown folded; null or "": none. */
  detail: string | null;
  /** A short line (the approver's note, why it was denied); null or "": none. */
  note: string | null;
  /** Whether Approve and Deny show: the approval is pending and `approve` callable. */
  approvable: boolean;
  /** The ids of the files the tool returned, and how to fetch one (file-part.ts). */
  files?: string[];
  loadFile?: FileLoader | null;
}

/** What the chat view does for its cards: the approve calls in flight, and making one. */
export interface ApprovalControl {
  /** Whether the kernel side is there to call (connection.ts). */
  readonly connected: boolean;
  /** Whether a decision on `call` waits for its reply. */
  deciding(call: Json): boolean;
  /** Approve or deny `call`, with the reader's note ("" for none). */
  decide(call: Json, approved: boolean, note: string): void;
}

/** Rule 3: the arguments on one line, whitespace folded, ellipsized past `PREVIEW_CHARS`. */
export function argsPreview(args: string): string {
  const head = args.slice(0, PREVIEW_SCAN).replace(/\s+/g, " ").trim();
  if (head.length > PREVIEW_CHARS) return `${cut(head, PREVIEW_CHARS - 1).trimEnd()}…`;
  return args.length > PREVIEW_SCAN ? `${head}…` : head;
}

/** Rule 2: the arguments pretty-printed, or null when they are not JSON. */
export function prettyArgs(args: string): string | null {
  try {
    return JSON.stringify(JSON.parse(args) as Json, null, 2);
  } catch {
    return null;
  }
}

export class ToolCard {
  readonly el = element("div", "rxnb-msg rxnb-tool");
  /** The row last shown: an update with the same array (a diff left it alone) is skipped. */
  row: unknown = null;
  readonly card = element("details", "rxnb-tool-card");
  readonly #summary = document.createElement("summary");
  readonly #name = element("span", "rxnb-tool-name");
  readonly #preview = element("span", "rxnb-tool-preview");
  readonly #status = element("span", "rxnb-msg-status");
  readonly #args = element("pre", "rxnb-tool-args");
  /** The pre's only child: streamed arguments are appended to it (rule 2). */
  readonly #argsText = document.createTextNode("");
  readonly #result = element("div", "rxnb-tool-result");
  readonly #error = element("div", "rxnb-msg-error");
  readonly #detail = element("details", "rxnb-msg-detail");
  readonly #detailText = document.createElement("pre");
  readonly #approval = element("div", "rxnb-approval");
  readonly #approvalState = element("span", "rxnb-approval-state");
  readonly #controls = element("span", "rxnb-approval-controls");
  readonly #noteInput = element("input", "rxnb-approval-note");
  readonly #approve = element("button", "rxnb-approve");
  readonly #deny = element("button", "rxnb-deny");
  readonly #approvalError = element("span", "rxnb-approval-error");
  readonly #note = element("div", "rxnb-msg-note");
  readonly #control: ApprovalControl;
  #files: FileParts | null = null;
  #fields: ToolFields;
  /** The arguments the pre stands for, and whether it shows them pretty-printed. */
  #argsShown = "";
  #argsPretty = false;
  /** The call id as a string, to find this card again by it. */
  #callKey: string;
  /** Whether the card is open by its status (what we last set), and whether the reader toggled it. */
  #autoOpen = false;
  #touched = false;

  constructor(fields: ToolFields, control: ApprovalControl) {
    this.#control = control;
    this.#fields = fields;
    this.#callKey = JSON.stringify(fields.call);
    this.el.setAttribute("data-role", "tool");
    if (fields.key !== null) this.el.setAttribute("data-key", fields.key);

    this.#summary.append(this.#name, this.#preview, this.#status);
    this.#args.append(this.#argsText);
    const detailSummary = document.createElement("summary");
    detailSummary.textContent = "details";
    this.#detail.append(detailSummary, this.#detailText);
    this.card.append(this.#summary, this.#args, this.#result, this.#error, this.#detail);

    this.#noteInput.type = "text";
    this.#noteInput.placeholder = "note (optional)";
    this.#noteInput.setAttribute("aria-label", "Note on the decision");
    this.#approve.type = "button";
    this.#approve.textContent = "Approve";
    this.#deny.type = "button";
    this.#deny.textContent = "Deny";
    this.#approve.addEventListener("click", () => this.#decide(true));
    this.#deny.addEventListener("click", () => this.#decide(false));
    this.#approvalError.setAttribute("role", "alert");
    this.#approvalError.hidden = true;
    this.#controls.append(this.#noteInput, this.#approve, this.#deny);
    this.#approval.append(this.#approvalState, this.#controls, this.#approvalError);
    // Keys typed in the note are not notebook shortcuts (JupyterLab skips them here).
    this.#approval.setAttribute("data-lm-suppress-shortcuts", "true");
    this.#noteInput.addEventListener("keydown", (event) => event.stopPropagation());

    this.el.append(this.card, this.#approval, this.#note);

    // The reader toggled the card: from now on it stays as they leave it. A toggle event
    // also follows our own `open =`, but then `open` is what we set.
    this.#summary.addEventListener("click", () => {
      this.#touched = true;
    });
    this.card.addEventListener("toggle", () => {
      if (this.card.open !== this.#autoOpen) this.#touched = true;
    });

    this.#showName();
    this.#showArgs();
    this.#showStatus();
    this.#showResult();
    this.#showError();
    this.#showDetail();
    this.#showApproval();
    this.#showNote();
    this.#showOpen();
    this.#showFiles();
  }

  /** The call id as `JSON.stringify` writes it (what the view finds the card by). */
  get callKey(): string {
    return this.#callKey;
  }

  /** The row changed: update the parts that did. */
  set(fields: ToolFields): void {
    const old = this.#fields;
    this.#fields = fields;
    if (fields.name !== old.name) this.#showName();
    if (JSON.stringify(fields.files ?? []) !== JSON.stringify(old.files ?? [])) this.#showFiles();
    const streaming = fields.status === "streaming";
    if (fields.args !== old.args || streaming !== (old.status === "streaming")) this.#showArgs();
    if (fields.status !== old.status) this.#showStatus();
    if (fields.result !== old.result) this.#showResult();
    if (fields.error !== old.error) this.#showError();
    if (fields.detail !== old.detail) this.#showDetail();
    if (fields.note !== old.note) this.#showNote();
    if (fields.call !== old.call) this.#callKey = JSON.stringify(fields.call);
    if (fields.approval !== old.approval || fields.approvable !== old.approvable || fields.call !== old.call) {
      this.#showApproval();
    }
    if (fields.status !== old.status || fields.approval !== old.approval) this.#showOpen();
  }

  /** Enable Approve and Deny unless their call waits or the kernel side is gone. */
  refreshApproval(): void {
    const connected = this.#control.connected;
    const waiting = this.#control.deciding(this.#fields.call);
    this.#approve.disabled = !connected || waiting;
    this.#deny.disabled = !connected || waiting;
    this.#noteInput.disabled = !connected;
  }

  /** A decision's call failed: its error next to the buttons, until the next decision. */
  showApprovalError(error: ErrorInfo): void {
    this.#approvalError.textContent = `${error.type}: ${error.message}`;
    this.#approvalError.hidden = false;
  }

  #decide(approved: boolean): void {
    if (!this.#fields.approvable) return;
    this.#approvalError.hidden = true;
    this.#control.decide(this.#fields.call, approved, this.#noteInput.value);
  }

  #showName(): void {
    this.#name.textContent = this.#fields.name || "tool";
  }

  /** Rules 2 and 3. */
  #showArgs(): void {
    const { args, status } = this.#fields;
    const shown = this.#argsShown;
    if (status === "streaming") {
      if (!this.#argsPretty && args.length >= shown.length && args.startsWith(shown)) {
        if (args.length > shown.length) this.#argsText.appendData(args.slice(shown.length));
      } else {
        this.#argsText.data = args;
      }
      this.#argsPretty = false;
    } else {
      const pretty = prettyArgs(args);
      this.#argsText.data = pretty ?? args;
      this.#argsPretty = pretty !== null;
    }
    this.#argsShown = args;
    this.#args.hidden = args === "";
    const preview = argsPreview(args);
    if (this.#preview.textContent !== preview) this.#preview.textContent = preview;
    this.#preview.hidden = preview === "";
  }

  #showStatus(): void {
    const { status } = this.#fields;
    this.el.setAttribute("data-status", status ?? "");
    if (status === null) this.#status.replaceChildren();
    else this.#status.replaceChildren(statusBadge(status, TOOL_LIVE.has(status)));
  }

  /** The tool's files under the card (made when the first one comes). */
  #showFiles(): void {
    const { files = [], loadFile = null } = this.#fields;
    if (this.#files === null) {
      if (files.length === 0 || loadFile === null) return;
      this.#files = new FileParts(loadFile);
      this.card.after(this.#files.el);
    }
    this.#files.show(files);
  }

  #showResult(): void {
    const { result } = this.#fields;
    this.#result.textContent = result;
    this.#result.hidden = result === "";
  }

  #showError(): void {
    const { error } = this.#fields;
    this.#error.textContent = error ?? "";
    this.#error.hidden = error === null || error === "";
  }

  /** The details, folded, under the error line; the same element stays (open if the reader opened it). */
  #showDetail(): void {
    const { detail } = this.#fields;
    this.#detailText.textContent = detail ?? "";
    this.#detail.hidden = detail === null || detail === "";
  }

  #showNote(): void {
    const { note } = this.#fields;
    this.#note.textContent = note ?? "";
    this.#note.hidden = note === null || note === "";
  }

  #showApproval(): void {
    const { approval, approvable } = this.#fields;
    if (approval === null || approval === "") {
      this.el.removeAttribute("data-approval");
      this.#approval.hidden = true;
    } else {
      this.el.setAttribute("data-approval", approval);
      this.#approval.hidden = false;
      this.#approvalState.textContent = APPROVAL_TEXT.get(approval) ?? approval;
    }
    this.#controls.hidden = !approvable;
    if (!approvable) this.#approvalError.hidden = true;
    this.refreshApproval();
  }

  /** Open while it needs the reader (streaming, waiting, failed), unless they toggled it. */
  #showOpen(): void {
    if (this.#touched) return;
    const { status, approval } = this.#fields;
    const open = (status !== null && OPEN_STATUSES.has(status)) || approval === "pending";
    this.#autoOpen = open;
    if (this.card.open !== open) this.card.open = open;
  }
}
