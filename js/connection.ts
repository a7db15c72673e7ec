/**
 * Whether a model's kernel side is still there: the one place the front end learns that
 * the kernel behind a live view went away (restarted, shut down, died), so that every
 * view of the model says so and stops offering what cannot work any more
 * (docs/widget-protocol.md, "When the kernel goes away").
 *
 * Responsibilities:
 * - watch the signals below, for one model, and tell subscribers once it is gone;
 * - stop watching (`dispose`) when the model's front end goes.
 *
 * Rules (what was seen to fire in JupyterLab 4.6 and Notebook 7.6, ipywidgets 8.1,
 * anywidget 0.11):
 * 1. `comm_live_update` on the model means gone. The widget manager sets every model's
 *    `comm_live` to false when its kernel restarts (Kernel → Restart, or the server
 *    restarting a kernel that died). anywidget's model proxy does not expose `comm_live`
 *    itself, but ipywidgets only ever sets it to false once a model is made.
 * 2. `comm:close` on the model means gone: the kernel closed the widget (its views are
 *    then removed too).
 * 3. A shutdown (Kernel → Shut Down) fires nothing on the model: the widget manager's
 *    kernel connection is disposed. That connection (`model.widget_manager.kernel`,
 *    which anywidget's types do not promise) is watched where a host has one: disposed,
 *    or a status of `restarting`, `autorestarting` or `dead` (the server's word for a
 *    restart that failed), means gone.
 * 4. Gone is for good: the model's comm does not come back after a restart. Running the
 *    cell again makes a new widget, with a new watch.
 */
import type { Model } from "./widget";

/** Whether the kernel side of a model is there to answer. */
export type Connection = "connected" | "disconnected";

export type ConnectionListener = (connection: Connection) => void;

/** Model events that mean the kernel side is gone (rules 1 and 2). */
export const GONE_EVENTS: readonly string[] = ["comm_live_update", "comm:close"];

/** Kernel connection statuses that mean the kernel the model lived in is gone (rule 3). */
export const GONE_STATUSES: ReadonlySet<string> = new Set(["restarting", "autorestarting", "dead"]);

/** A Lumino signal, as far as it is used here. */
interface Signal<T> {
  connect(slot: (sender: unknown, args: T) => void): boolean;
  disconnect(slot: (sender: unknown, args: T) => void): boolean;
}

/** The parts of JupyterLab's kernel connection (`Kernel.IKernelConnection`) read here. */
export interface KernelLike {
  readonly isDisposed: boolean;
  readonly status: string;
  readonly disposed: Signal<unknown>;
  readonly statusChanged: Signal<string>;
}

function isSignal(value: unknown): boolean {
  const signal = value as Partial<Signal<unknown>> | null | undefined;
  return typeof signal?.connect === "function" && typeof signal.disconnect === "function";
}

/** The host's kernel connection behind `model`, where it has one (rule 3); else null. */
export function kernelOf(model: Model): KernelLike | null {
  let kernel: unknown;
  try {
    kernel = (model.widget_manager as { kernel?: unknown }).kernel;
  } catch {
    return null; // a disposed JupyterLab widget manager throws from its `kernel` getter
  }
  if (typeof kernel !== "object" || kernel === null) return null;
  const k = kernel as Partial<KernelLike>;
  const usable =
    typeof k.isDisposed === "boolean" &&
    typeof k.status === "string" &&
    isSignal(k.disposed) &&
    isSignal(k.statusChanged);
  return usable ? (k as KernelLike) : null;
}

export class ConnectionWatch {
  #state: Connection = "connected";
  readonly #listeners = new Set<ConnectionListener>();
  readonly #unwatch: (() => void)[] = [];

  constructor(model: Model) {
    const onGone = (): void => this.#lose();
    for (const event of GONE_EVENTS) {
      model.on(event, onGone); // rules 1 and 2
      this.#unwatch.push(() => model.off(event, onGone));
    }
    const kernel = kernelOf(model);
    if (kernel === null) return;
    // Rule 3. A model made after its kernel was disposed never had a live comm.
    if (kernel.isDisposed || kernel.status === "dead") {
      this.#state = "disconnected";
      return;
    }
    const onStatus = (_: unknown, status: string): void => {
      if (GONE_STATUSES.has(status)) this.#lose();
    };
    kernel.disposed.connect(onGone);
    kernel.statusChanged.connect(onStatus);
    this.#unwatch.push(() => {
      kernel.disposed.disconnect(onGone);
      kernel.statusChanged.disconnect(onStatus);
    });
  }

  get state(): Connection {
    return this.#state;
  }

  /** Call `listener` when the kernel side goes (once); returns the unsubscribe function. */
  subscribe(listener: ConnectionListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stop watching; the model's front end is going away. */
  dispose(): void {
    this.#listeners.clear();
    this.#stopWatching();
  }

  #lose(): void {
    if (this.#state === "disconnected") return; // rule 4: several signals, one change
    this.#state = "disconnected";
    this.#stopWatching(); // rule 4: nothing brings it back
    for (const listener of this.#listeners) listener(this.#state);
  }

  #stopWatching(): void {
    for (const unwatch of this.#unwatch.splice(0)) unwatch();
  }
}
