/**
 * One view of a live result: `div.rxnb-live`, as docs/widget-protocol.md lays it out.
 *
 * Responsibilities:
 * - the root's `data-kind`, `data-version`, `data-state` and `data-connection`;
 * - the header: title, row count (tables) and status (live, resyncing, error, or
 *   disconnected once the kernel side is gone, which outranks the others);
 * - handing the connection (connection.ts) to the body, which disables what calls the
 *   kernel and stops what moves once it is gone; what is shown stays readable;
 * - the error banner above the last good data, which stays, dimmed;
 * - the body for each kind: table (see table.ts), markdown, value, json, the chat view
 *   (chat.ts) for a table payload with a `chat` field (root `data-kind="chat"`), and the
 *   step timeline (timeline.ts) for one with a `timeline` field (`data-kind="timeline"`).
 *   The body is rebuilt only when the kind changes; otherwise each kind updates in place.
 */
import type { Caller } from "./calls";
import { fillCell } from "./cells";
import { ChatPanel } from "./chat";
import type { Connection } from "./connection";
import { renderMarkdown } from "./markdown";
import type { Kind, Payload } from "./protocol";
import { browserMotion, type Motion } from "./smooth";
import type { SyncStatus } from "./state";
import { TableView } from "./table";
import { TimelinePanel } from "./timeline";
import { EvalsPanel } from "./evals";
import { ModelsPanel } from "./models";

/**
 * What a view shows: a payload's kind, a chat (a table payload with `chat`) or a step
 * timeline (one with `timeline`; a payload with both shows the chat).
 */
export type ViewKind = Kind | "chat" | "timeline" | "models" | "evals";

export function viewKind(payload: Payload): ViewKind {
  if (payload.kind !== "table") return payload.kind;
  if (payload.chat !== undefined) return "chat";
  if (payload.models !== undefined) return "models";
  if (payload.evals !== undefined) return "evals";
  return payload.timeline !== undefined ? "timeline" : "table";
}

type Body =
  | { kind: "table"; view: TableView }
  | { kind: "chat"; view: ChatPanel }
  | { kind: "timeline"; view: TimelinePanel }
  | { kind: "models"; view: ModelsPanel }
  | { kind: "evals"; view: EvalsPanel }
  | { kind: "markdown"; el: HTMLDivElement; text: string | null }
  | { kind: "value"; el: HTMLDivElement }
  | { kind: "json"; el: HTMLPreElement };

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  return el;
}

/** The header's status while the kernel side is gone. */
export const DISCONNECTED_TEXT = "disconnected — run this cell to reconnect";
/** The header's words while the view is not known to be current (state.ts). */
const SYNC_TEXT: Record<"confirming" | "resyncing", string> = {
  confirming: "connecting…",
  resyncing: "resyncing…",
};

function plural(n: number, noun: string): string {
  return `${n.toLocaleString("en")} ${noun}${n === 1 ? "" : "s"}`;
}

export class LiveView {
  readonly root: HTMLDivElement;
  readonly #title = element("span", "rxnb-title");
  readonly #count = element("span", "rxnb-count");
  readonly #status = element("span", "rxnb-status");
  readonly #error = element("div", "rxnb-error");
  readonly #errorType = element("span", "rxnb-error-type");
  readonly #errorMessage = element("span", "rxnb-error-message");
  readonly #content = element("div", "rxnb-body");
  readonly #caller: Caller | null;
  readonly #motion: Motion | null;
  #body: Body | null = null;
  #connection: Connection = "connected";
  #sync: SyncStatus = "live";
  #state: "ok" | "error" = "ok";
  #version = 0;

  /**
   * `caller`: the model's functions, for a table's row actions and a chat's input and
   * abort button (null: none shown). `motion`: the clock and animation frames of a
   * chat's smooth text (null: the browser's).
   */
  constructor(parent: HTMLElement, caller: Caller | null = null, motion: Motion | null = null) {
    this.#caller = caller;
    this.#motion = motion;
    this.root = element("div", "rxnb-live");
    this.root.setAttribute("data-connection", this.#connection);
    const header = element("div", "rxnb-header");
    header.append(this.#title, this.#count, this.#status);
    this.#error.setAttribute("role", "alert");
    this.#error.append(this.#errorType, this.#errorMessage);
    this.root.append(header, this.#error, this.#content);
    parent.append(this.root);
  }

  update(payload: Payload, sync: SyncStatus = "live"): void {
    const state = payload.error === null ? "ok" : "error";
    const kind = viewKind(payload);
    this.root.setAttribute("data-kind", kind);
    this.root.setAttribute("data-version", String(payload.version));
    this.root.setAttribute("data-state", state);

    this.#title.textContent = payload.title;
    this.#count.hidden = kind !== "table";
    this.#count.textContent = kind === "table" ? plural(payload.rows.length, "row") : "";
    this.#sync = sync;
    this.#state = state;
    this.#version = payload.version;
    this.#showStatus();

    this.#error.hidden = payload.error === null;
    this.#errorType.textContent = payload.error?.type ?? "";
    this.#errorMessage.textContent = payload.error?.message ?? "";

    this.#updateBody(payload, kind);
  }

  /** Whether the kernel side is there; once gone, nothing here may call it. */
  setConnection(connection: Connection): void {
    if (connection === this.#connection) return;
    this.#connection = connection;
    this.root.setAttribute("data-connection", connection);
    this.#showStatus();
    this.#connectBody();
  }

  dispose(): void {
    this.#disposeBody();
    this.root.remove();
  }

  #showStatus(): void {
    const gone = this.#connection === "disconnected";
    const waiting = this.#sync !== "live"; // confirming or resyncing: not known to be current
    const status = gone ? "disconnected" : waiting ? this.#sync : this.#state === "error" ? "error" : "live";
    this.#status.setAttribute("data-status", status);
    this.#status.textContent = gone ? DISCONNECTED_TEXT : waiting ? SYNC_TEXT[this.#sync as "confirming" | "resyncing"] : status;
    this.#status.title = gone
      ? `The kernel behind this view is gone (restarted or shut down): it shows version ${this.#version}, ` +
        "the last it received, and changes no more. Run the cell again for a live view."
      : `version ${this.#version}`;
  }

  /** The body's parts that call the kernel or move follow the connection. */
  #connectBody(): void {
    const body = this.#body;
    if (body !== null && "view" in body) {
      body.view.setConnection(this.#connection);
    }
  }

  #disposeBody(): void {
    const body = this.#body;
    if (body !== null && "view" in body) body.view.dispose();
  }

  #updateBody(payload: Payload, kind: ViewKind): void {
    if (this.#body?.kind !== kind) {
      this.#disposeBody();
      this.#body = this.#makeBody(kind);
      this.#connectBody();
    }
    const body = this.#body;
    switch (body.kind) {
      case "table":
      case "chat":
      case "timeline":
      case "models":
      case "evals":
        body.view.update(payload);
        return;
      case "markdown":
        // An append re-renders the whole text: markdown is not additive (an open code
        // fence or list changes what follows), and sanitizing a message is cheap.
        if (body.text !== payload.text) {
          body.el.replaceChildren(renderMarkdown(payload.text));
          body.text = payload.text;
        }
        return;
      case "value":
        fillCell(body.el, payload.value);
        return;
      case "json":
        body.el.textContent = JSON.stringify(payload.value, null, 2);
        return;
    }
  }

  #makeBody(kind: ViewKind): Body {
    this.#content.replaceChildren();
    switch (kind) {
      case "table":
        return { kind, view: new TableView(this.#content, this.#caller) };
      case "chat":
        return { kind, view: new ChatPanel(this.#content, this.#caller, this.#motion ?? browserMotion()) };
      case "timeline":
        return { kind, view: new TimelinePanel(this.#content, this.#caller) };
      case "models":
        return { kind, view: new ModelsPanel(this.#content) };
      case "evals":
        return { kind, view: new EvalsPanel(this.#content) };
      case "markdown":
        return { kind, el: this.#content.appendChild(element("div", "rxnb-markdown")), text: null };
      case "value":
        return { kind, el: this.#content.appendChild(element("div", "rxnb-value")) };
      case "json":
        return { kind, el: this.#content.appendChild(element("pre", "rxnb-json")) };
    }
  }
}
