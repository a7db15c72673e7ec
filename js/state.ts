/**
 * One model's live result, shared by every view of that model.
 *
 * Responsibilities:
 * - hold the payload: first the `payload` trait, then as updated by custom messages;
 * - when the page (re)connects, ask the kernel whether the state it starts from is
 *   current (`resync` with the version held: a host may replay the state the widget was
 *   made with, as marimo does after a reload) and show it as `confirming`, not `live`,
 *   until the kernel says so (`current`), sends a full, or sends an update that builds
 *   on the version held;
 * - ask the kernel for a full (`resync`) on a gap, and ignore updates until it comes;
 *   ask again if it does not come, waiting longer each time (a message can be lost:
 *   ipykernel drops one it routes to a subshell that no longer exists);
 * - tell each subscribed view when the payload or the sync status changed;
 * - once halted (the kernel side is gone, connection.ts), never ask again.
 */
import { applyMessage, normalizePayload, type Payload } from "./protocol";

/** How long to wait for the full a `resync` asked for before asking again (ms). */
export const RESYNC_RETRY_MS = 2_000;
/**
 * The longest wait between two asks (ms). The waits double up to this: a kernel busy
 * with a long cell answers only when the cell ends, and meanwhile should not pile up asks.
 */
export const RESYNC_RETRY_MAX_MS = 30_000;

/**
 * Whether the payload held is trusted to be current: `live`; `confirming`, just
 * (re)connected, updates applied while the kernel is asked; `resyncing`, a gap seen,
 * updates ignored until a full.
 */
export type SyncStatus = "live" | "confirming" | "resyncing";

export type Listener = (payload: Payload, sync: SyncStatus) => void;

export class LiveState {
  #payload: Payload;
  #sync: SyncStatus = "live";
  readonly #listeners = new Set<Listener>();
  readonly #send: (content: unknown) => void;
  /** While resyncing: the timer that asks again, and how long it waits. */
  #retry: ReturnType<typeof setTimeout> | null = null;
  #retryMs = RESYNC_RETRY_MS;
  /** The kernel side is gone: nothing would answer a `resync`. */
  #halted = false;

  constructor(initial: unknown, send: (content: unknown) => void) {
    this.#payload = normalizePayload(initial);
    this.#send = send;
  }

  get payload(): Payload {
    return this.#payload;
  }

  get sync(): SyncStatus {
    return this.#sync;
  }

  /**
   * The page has (re)connected: ask the kernel whether the payload held is current, and
   * mark it `confirming` until it answers. A model whose kernel is gone stays as it is.
   */
  confirm(): void {
    if (this.#halted || this.#sync !== "live") return;
    this.#sync = "confirming";
    this.#retryMs = RESYNC_RETRY_MS;
    try {
      this.#askForFull();
    } catch {
      // No comm to send on (a host without a kernel): nothing can confirm or update it.
      this.#stopAsking();
      this.#sync = "live";
      return;
    }
    this.#notify();
  }

  /** A custom message from the kernel. */
  receive(message: unknown): void {
    if (isCurrent(message)) {
      // The kernel's answer to a `resync` whose version it still holds.
      if (this.#sync === "confirming" && message.version === this.#payload.version) {
        this.#set(this.#payload, "live");
      }
      return;
    }
    const outcome = applyMessage(this.#payload, message);
    switch (outcome.status) {
      case "applied":
        // Until the full asked for arrives, updates may build on what we missed. An
        // update that applies while confirming builds on the version held: it is current.
        if (this.#sync === "resyncing" && outcome.by !== "full") return;
        this.#set(outcome.payload, "live");
        return;
      case "gap":
        if (this.#sync === "resyncing" || this.#halted) return;
        this.#sync = "resyncing";
        this.#retryMs = RESYNC_RETRY_MS;
        this.#askForFull();
        this.#notify();
        return;
      case "stale":
      case "ignored":
        return;
    }
  }

  /** The `payload` trait changed: the kernel's whole truth, taken as a full. */
  replace(payload: unknown): void {
    this.#set(normalizePayload(payload), "live");
  }

  /** Call `listener` on every change from now on; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The kernel side is gone: stop asking for a full, and never ask again. */
  halt(): void {
    this.#halted = true;
    this.#stopAsking();
  }

  dispose(): void {
    this.#listeners.clear();
    this.#stopAsking();
  }

  /** Send `resync`, and again after a wait (doubled each time) until a full ends it. */
  #askForFull(): void {
    this.#send({ type: "resync", version: this.#payload.version });
    this.#retry = setTimeout(() => this.#askAgain(), this.#retryMs);
  }

  #askAgain(): void {
    this.#retry = null;
    if (this.#sync === "live") return;
    this.#retryMs = Math.min(this.#retryMs * 2, RESYNC_RETRY_MAX_MS);
    try {
      this.#askForFull();
    } catch {
      // The model's connection is gone (kernel shut down): nothing would answer, and a
      // new connection brings a new state.
    }
  }

  #stopAsking(): void {
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
  }

  #set(payload: Payload, sync: SyncStatus): void {
    if (sync === "live") this.#stopAsking();
    this.#payload = payload;
    this.#sync = sync;
    this.#notify();
  }

  #notify(): void {
    for (const listener of this.#listeners) listener(this.#payload, this.#sync);
  }
}

/** `{"type": "current", "version": v}`: the kernel holds version `v` as the page does. */
function isCurrent(message: unknown): message is { type: "current"; version: number } {
  return (
    typeof message === "object" &&
    message !== null &&
    (message as { type?: unknown }).type === "current" &&
    typeof (message as { version?: unknown }).version === "number"
  );
}
