/**
 * One model's live result, shared by every view of that model.
 *
 * Responsibilities:
 * - hold the payload: first the `payload` trait, then as updated by custom messages;
 * - ask the kernel for a full (`resync`) once per gap, and ignore updates until it comes;
 * - tell each subscribed view when the payload or the sync status changed.
 */
import { applyMessage, normalizePayload, type Payload } from "./protocol";

/** Whether the payload held is trusted to be current. */
export type SyncStatus = "live" | "resyncing";

export type Listener = (payload: Payload, sync: SyncStatus) => void;

export class LiveState {
  #payload: Payload;
  #sync: SyncStatus = "live";
  readonly #listeners = new Set<Listener>();
  readonly #send: (content: unknown) => void;

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

  /** A custom message from the kernel. */
  receive(message: unknown): void {
    const outcome = applyMessage(this.#payload, message);
    switch (outcome.status) {
      case "applied":
        // Until the full asked for arrives, updates may build on what we missed.
        if (this.#sync === "resyncing" && outcome.by !== "full") return;
        this.#set(outcome.payload, "live");
        return;
      case "gap":
        if (this.#sync === "resyncing") return;
        this.#sync = "resyncing";
        this.#send({ type: "resync" });
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

  dispose(): void {
    this.#listeners.clear();
  }

  #set(payload: Payload, sync: SyncStatus): void {
    this.#payload = payload;
    this.#sync = sync;
    this.#notify();
  }

  #notify(): void {
    for (const listener of this.#listeners) listener(this.#payload, this.#sync);
  }
}
