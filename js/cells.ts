/**
 * How one value from the store reads on screen, as text only: null is a dimmed dash,
 * booleans are true/false, objects and arrays are compact JSON, strings are themselves.
 */
import type { Json } from "./protocol";

export const NULL_MARK = "—";

/** The text shown for a non-null value. */
export function formatValue(value: Json): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** Put `value` into `el` as text; the store's strings never become markup. */
export function fillCell(el: HTMLElement, value: Json | undefined): void {
  if (value === null || value === undefined) {
    const mark = document.createElement("span");
    mark.className = "rxnb-null";
    mark.textContent = NULL_MARK;
    el.replaceChildren(mark);
  } else {
    el.textContent = formatValue(value);
  }
}

/** Whether two cells show the same thing (JSON values compared by content). */
export function sameValue(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}
