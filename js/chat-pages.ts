/**
 * A paged chat's earlier pages (the `chat` field's `earlier`, docs/widget-protocol.md,
 * "Earlier pages"): the log shows the pages the kernel follows, the latest first, and
 * asks for the page before the oldest when the reader scrolls to its top.
 *
 * Responsibilities:
 * - one `earlier` call at a time, never once the kernel said there is none (`done`) or
 *   while the kernel side is gone;
 * - `.rxnb-chat-earlier` at the top of the log while a page is on its way;
 * - a failed call shows in the chat's call error line; the next scroll to the top asks
 *   again, but a log too short to scroll does not ask again by itself.
 *
 * The rows of the page come as the query's next diff, not in the reply: the page is a
 * live subscription of the kernel's, like the latest one.
 */
import type { CallError } from "./actions";
import type { Caller } from "./calls";
import type { Json } from "./protocol";

/** How close to the top of the log (px) asks for the page before. */
export const EARLIER_PX = 48;

export type EarlierState = "idle" | "loading" | "done";

export class EarlierPages {
  readonly el: HTMLDivElement;
  readonly #caller: Caller | null;
  readonly #callError: CallError;
  #fn: string | null = null;
  #forget: (() => void) | null = null;
  #state: EarlierState = "idle";
  #failed = false;

  constructor(caller: Caller | null, callError: CallError) {
    this.#caller = caller;
    this.#callError = callError;
    this.el = document.createElement("div");
    this.el.className = "rxnb-chat-earlier";
    this.el.setAttribute("role", "status");
    this.el.textContent = "Loading earlier messages…";
    this.#show();
  }

  /** Whether the chat is paged (its `earlier` function is bound). */
  get paged(): boolean {
    return this.#fn !== null;
  }

  get state(): EarlierState {
    return this.#state;
  }

  /** A new `chat` field: page through `earlier.fn`, or not at all; at the top of `log`. */
  configure(log: HTMLElement, earlier: { fn: string } | undefined): void {
    this.#forget?.();
    this.#forget = null;
    this.#state = "idle";
    this.#failed = false;
    const fn = earlier?.fn ?? null;
    this.#fn = fn !== null && this.#caller?.functions.has(fn) === true ? fn : null;
    if (this.#fn === null) this.el.remove();
    else if (log.firstChild !== this.el) log.prepend(this.el);
    this.#show();
  }

  /**
   * Ask for the page before the oldest shown, unless one is on its way, there is none,
   * or the kernel side is gone. `auto` (the log is too short to scroll) does not ask
   * again after a failure: only the reader's scroll does.
   */
  load(connected: boolean, auto = false): boolean {
    const fn = this.#fn;
    if (fn === null || this.#caller === null || !connected || this.#state !== "idle") return false;
    if (auto && this.#failed) return false;
    this.#state = "loading";
    this.#show();
    this.#forget = this.#caller.call(fn, {}, (reply) => {
      this.#forget = null;
      if (reply.ok) {
        const result: Json = reply.result;
        const done = result !== null && typeof result === "object" && !Array.isArray(result) && result.done === true;
        this.#state = done ? "done" : "idle";
        this.#failed = false;
      } else {
        this.#state = "idle";
        this.#failed = true;
        this.#callError.show(reply.error);
      }
      this.#show();
    });
    return true;
  }

  /** The kernel side is gone: no reply will come; nothing shows as on its way. */
  stop(): void {
    this.dispose();
    if (this.#state === "loading") this.#state = "idle";
    this.#show();
  }

  dispose(): void {
    this.#forget?.();
    this.#forget = null;
  }

  #show(): void {
    this.el.dataset.state = this.#state;
    this.el.hidden = this.#state !== "loading";
  }
}
