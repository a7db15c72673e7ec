/**
 * Row actions (the payload's `actions`): buttons in a table's last column that call a
 * bound function with a value of their row, e.g. Cancel and Retry on a runs view.
 *
 * Responsibilities:
 * - keep only actions the model's `functions` lists (the kernel refuses the others);
 * - per row, a `button.rxnb-action[data-action]` for each action whose `when` holds;
 * - a click sends the `call`; every button for that same call (the row may be redrawn
 *   meanwhile) stays disabled until its `reply` comes;
 * - once the kernel side is gone (connection.ts), every button is disabled: no call
 *   could be answered;
 * - a failed reply shows `type: message` in `.rxnb-call-error` above the table, until
 *   the next failure replaces it or the reader dismisses it.
 *
 * What the call did shows up as it does for any write: the live query's next diff.
 */
import { sameValue } from "./cells";
import type { Caller } from "./calls";
import type { RowLookup } from "./formats";
import type { ErrorInfo, Json, Reply, RowAction } from "./protocol";

/** The actions of `actions` that `caller` may call. */
export function callableActions(actions: readonly RowAction[] | undefined, caller: Caller | null): RowAction[] {
  if (actions === undefined || caller === null) return [];
  return actions.filter((action) => caller.functions.has(action.name));
}

/** Whether `action` belongs on a row: its `when` holds (or it has none). */
export function appliesTo(action: RowAction, row: RowLookup): boolean {
  if (action.when === null) return true;
  const value = row(action.when.column);
  return value !== undefined && action.when.in.some((allowed) => sameValue(allowed, value));
}

export class RowActions {
  readonly #caller: Caller;
  readonly #table: HTMLTableElement;
  /** Calls waiting for their reply, by `callKey`, with the function that forgets each. */
  readonly #pending = new Map<string, () => void>();
  readonly #keys = new WeakMap<HTMLButtonElement, string>();
  #error: CallError | null = null;
  #connected = true;

  constructor(caller: Caller, table: HTMLTableElement) {
    this.#caller = caller;
    this.#table = table;
  }

  /** Fill `td` with the buttons of `actions` that apply to `row`. */
  fill(td: HTMLTableCellElement, actions: readonly RowAction[], row: RowLookup): void {
    td.className = "rxnb-actions";
    for (const action of actions) {
      const value = row(action.column);
      if (value === undefined || !appliesTo(action, row)) continue;
      const args: Record<string, Json> = { [action.arg]: value };
      const key = JSON.stringify([action.name, args]);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "rxnb-action";
      button.setAttribute("data-action", action.name);
      button.textContent = action.label;
      button.disabled = !this.#connected || this.#pending.has(key);
      button.addEventListener("click", () => this.#call(key, action.name, args));
      this.#keys.set(button, key);
      td.append(button);
    }
  }

  /** Whether the kernel side is there to call (false: every button is disabled). */
  setConnected(connected: boolean): void {
    this.#connected = connected;
    this.#showPending();
  }

  /** Forget the calls in flight: their replies will find no one. */
  dispose(): void {
    for (const forget of this.#pending.values()) forget();
    this.#pending.clear();
    this.#error?.remove();
  }

  #call(key: string, fn: string, args: Record<string, Json>): void {
    if (!this.#connected || this.#pending.has(key)) return;
    this.#pending.set(key, this.#caller.call(fn, args, (reply) => this.#settle(key, reply)));
    this.#showPending();
  }

  #settle(key: string, reply: Reply): void {
    this.#pending.delete(key);
    this.#showPending();
    if (!reply.ok) this.#showError(reply.error);
  }

  #showPending(): void {
    for (const button of this.#table.querySelectorAll<HTMLButtonElement>("button.rxnb-action")) {
      const key = this.#keys.get(button);
      if (key !== undefined) button.disabled = !this.#connected || this.#pending.has(key);
    }
  }

  #showError(error: ErrorInfo): void {
    this.#error ??= new CallError(this.#table);
    this.#error.show(error);
  }
}

/**
 * The line that tells why a call failed: `.rxnb-call-error` (`role="alert"`) just before
 * `anchor`, holding `.rxnb-call-error-text` (`type: message`) and a × that hides it. Made
 * on the first failure; the next one replaces its text.
 */
export class CallError {
  readonly #anchor: Element;
  #line: { line: HTMLDivElement; text: HTMLSpanElement } | null = null;

  constructor(anchor: Element) {
    this.#anchor = anchor;
  }

  show(error: ErrorInfo): void {
    if (this.#line === null) {
      const line = document.createElement("div");
      line.className = "rxnb-call-error";
      line.setAttribute("role", "alert");
      const text = document.createElement("span");
      text.className = "rxnb-call-error-text";
      const close = document.createElement("button");
      close.type = "button";
      close.className = "rxnb-call-error-close";
      close.setAttribute("aria-label", "Dismiss");
      close.textContent = "×";
      close.addEventListener("click", () => {
        line.hidden = true;
      });
      line.append(text, close);
      this.#anchor.before(line);
      this.#line = { line, text };
    }
    this.#line.text.textContent = `${error.type}: ${error.message}`;
    this.#line.line.hidden = false;
  }

  remove(): void {
    this.#line?.line.remove();
    this.#line = null;
  }
}
