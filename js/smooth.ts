/**
 * Smooth text (docs/widget-protocol.md, "Chat view"): a streaming message's text is
 * revealed a few characters per animation frame, at a rate that follows the rate the
 * text comes in, so that bursty updates read as a steady stream.
 *
 * Responsibilities:
 * - `Reveal`: how much of one message's text is shown, as a pure function of the
 *   lengths it was told and the times it was told them (no DOM, no clock of its own);
 * - `FrameLoop`: one animation-frame loop that runs only while something moves;
 * - `Motion`: the clock, the frame scheduler and the reduced-motion preference, which
 *   tests replace (`browserMotion` is the real one).
 *
 * Rules:
 * 1. Text held when a message is first shown is shown at once (a reload, a second window).
 * 2. When more text arrives, what is not yet shown is spread over the average time
 *    between the last few arrivals (bounded by `MIN_INTERVAL_MS`..`MAX_INTERVAL_MS`):
 *    the backlog is gone by about when the next update is due.
 * 3. Once the message is no longer live (its status left pending/streaming), the rest is
 *    shown within `FINISH_MS`; text arriving after that gets its own `FINISH_MS`.
 * 4. Under `prefers-reduced-motion: reduce` text shows at once (the caller skips).
 */

/** Rule 3: the longest a finished message's rest takes to show. */
export const FINISH_MS = 300;
/** Rule 2: arrivals whose spacing is averaged. */
const HISTORY = 5;
/** Rule 2: the spacing assumed for the first arrival, when there is none to average. */
export const FIRST_INTERVAL_MS = 200;
const MIN_INTERVAL_MS = 16;
/** Rule 2: a long pause (a tool call, a slow first token) does not make the next text crawl. */
const MAX_INTERVAL_MS = 1000;

/** Time and frames, injectable so that tests drive them. */
export interface Motion {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  requestFrame(callback: () => void): number;
  cancelFrame(handle: number): void;
  /** Whether the reader asked for reduced motion (read on every frame: it may change). */
  reduced(): boolean;
}

/** The browser's clock, `requestAnimationFrame` and `prefers-reduced-motion`. */
export function browserMotion(win: Window = window): Motion {
  let query: MediaQueryList | null | undefined;
  return {
    now: () => win.performance.now(),
    requestFrame: (callback) => win.requestAnimationFrame(() => callback()),
    cancelFrame: (handle) => win.cancelAnimationFrame(handle),
    reduced: () => {
      // Not every host has matchMedia (jsdom has none): no preference then.
      if (query === undefined) {
        query = typeof win.matchMedia === "function" ? win.matchMedia("(prefers-reduced-motion: reduce)") : null;
      }
      return query?.matches ?? false;
    },
  };
}

/** The first `n` characters of `text`, never ending inside a surrogate pair. */
export function cut(text: string, n: number): string {
  if (n >= text.length) return text;
  const code = text.charCodeAt(n - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? n + 1 : n);
}

export class Reveal {
  #target: number;
  /** Characters shown, fractional: a slow rate moves less than one per frame. */
  #shown: number;
  /** Characters per millisecond (rule 2). */
  #rate = 0;
  #arrivals: number[] = [];
  /** When `step` last ran, or when the reveal last started moving. */
  #last: number;
  /** Rule 3: when everything must be shown by, or null while the message is live. */
  #deadline: number | null = null;

  /** A message first shown with `length` characters, at `now` (rule 1). */
  constructor(length: number, now: number) {
    this.#target = length;
    this.#shown = length;
    this.#last = now;
  }

  /** Characters of the text to show now. */
  get shown(): number {
    return Math.floor(this.#shown);
  }

  get target(): number {
    return this.#target;
  }

  get done(): boolean {
    return this.#shown >= this.#target;
  }

  /**
   * The text is now `length` characters long (it only grows: a text that changed
   * otherwise is a new `Reveal`); `live`: more may come.
   */
  update(length: number, live: boolean, now: number): void {
    if (length > this.#target) {
      // Idle time is not reveal time: the first step after a pause starts from here.
      if (this.done) this.#last = now;
      this.#arrivals.push(now);
      if (this.#arrivals.length > HISTORY) this.#arrivals.shift();
      this.#target = length;
      this.#rate = (this.#target - this.#shown) / this.#interval(); // rule 2
      if (!live) this.#deadline = now + FINISH_MS; // rule 3, for text after the end
    }
    if (live) this.#deadline = null;
    else if (this.#deadline === null && !this.done) this.#deadline = now + FINISH_MS; // rule 3
  }

  /** Advance to `now` (one animation frame). */
  step(now: number): void {
    const from = this.#last;
    this.#last = Math.max(from, now);
    if (this.done) return;
    let rate = this.#rate;
    if (this.#deadline !== null) {
      if (now >= this.#deadline) {
        this.#shown = this.#target;
        return;
      }
      // Fast enough that the rest is out by the deadline (rule 3).
      rate = Math.max(rate, (this.#target - this.#shown) / (this.#deadline - from));
    }
    this.#shown = Math.min(this.#target, this.#shown + rate * Math.max(0, now - from));
  }

  /** Show everything now (rule 4). */
  skip(): void {
    this.#shown = this.#target;
  }

  /** Rule 2: the average time between the last arrivals, within bounds. */
  #interval(): number {
    const times = this.#arrivals;
    const n = times.length;
    const average = n < 2 ? FIRST_INTERVAL_MS : (times[n - 1]! - times[0]!) / (n - 1);
    return Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, average));
  }
}

/**
 * Calls `onFrame(now)` once per animation frame while it returns true; `wake` starts it
 * again. At most one frame is ever requested.
 */
export class FrameLoop {
  readonly #motion: Motion;
  readonly #onFrame: (now: number) => boolean;
  #handle: number | null = null;
  #stopped = false;

  constructor(motion: Motion, onFrame: (now: number) => boolean) {
    this.#motion = motion;
    this.#onFrame = onFrame;
  }

  get running(): boolean {
    return this.#handle !== null;
  }

  wake(): void {
    if (this.#handle !== null || this.#stopped) return;
    this.#handle = this.#motion.requestFrame(() => {
      this.#handle = null;
      if (this.#onFrame(this.#motion.now())) this.wake();
    });
  }

  /** Cancel the frame requested, for good: the view is going away. */
  stop(): void {
    this.#stopped = true;
    if (this.#handle !== null) this.#motion.cancelFrame(this.#handle);
    this.#handle = null;
  }
}
