/**
 * rxnb's live query widget: the anywidget front-end module.
 *
 * anywidget calls the default export once per model and gets `{ initialize, render }`
 * back: `initialize` runs once for the model, `render` once per view (the same widget
 * shown in two cells, or in two windows of one page). The model's `LiveState` lives in
 * that per-model closure, so every view of one model shows the same payload, and a gap
 * asks the kernel for one resync, not one per view.
 *
 * Why a function and not a plain `{ initialize, render }` object: anywidget hands
 * `initialize` and each `render` a fresh proxy of the model, so no object identity
 * links a view to the state its model's `initialize` made; and when the module is
 * loaded by URL it is shared by all models. The function form is anywidget's own way
 * to keep per-model front-end state (anywidget >= 0.9).
 */
import type { AnyModel, AnyWidget } from "@anywidget/types";
import { Calls } from "./calls";
import { LiveView } from "./render";
import { hideSnapshot } from "./snapshot";
import { LiveState } from "./state";

/** The widget's synced traits (docs/widget-protocol.md). */
export interface Traits {
  [name: string]: unknown;
  payload: unknown;
  functions: string[];
  snapshot_id: string;
}

export type Model = AnyModel<Traits>;

/** The model's per-model parts: its live result and its calls. */
interface Connection {
  state: LiveState;
  calls: Calls;
  disconnect: () => void;
}

/**
 * A state fed by `model`'s messages and `payload` trait, the calls answered by its
 * replies, and how to stop feeding them. The `functions` trait is read once: the kernel
 * binds a widget's functions when it makes the widget.
 */
function connect(model: Model): Connection {
  const state = new LiveState(model.get("payload"), (content) => model.send(content));
  const calls = new Calls(model.get("functions"), (content) => model.send(content));
  const onMessage = (content: unknown): void => {
    if (!calls.receive(content)) state.receive(content);
  };
  const onPayload = (): void => state.replace(model.get("payload"));
  model.on("msg:custom", onMessage);
  model.on("change:payload", onPayload);
  return {
    state,
    calls,
    disconnect: () => {
      model.off("msg:custom", onMessage);
      model.off("change:payload", onPayload);
      state.dispose();
      calls.dispose();
    },
  };
}

export function createWidget() {
  let shared: Connection | null = null;

  return {
    initialize({ model }: { model: Model }): () => void {
      const connection = connect(model);
      shared = connection;
      return () => {
        connection.disconnect();
        if (shared === connection) shared = null;
      };
    },

    render({ model, el }: { model: Model; el: HTMLElement }): () => void {
      // A host that skipped `initialize` still gets a working view, fed on its own.
      let connection = shared;
      let own: Connection | null = null;
      if (connection === null) {
        own = connect(model);
        connection = own;
      }
      const { state, calls } = connection;
      const view = new LiveView(el, calls);
      view.update(state.payload, state.sync);
      const unsubscribe = state.subscribe((payload, sync) => view.update(payload, sync));
      const showSnapshot = hideSnapshot(el.ownerDocument, model.get("snapshot_id"));
      return () => {
        showSnapshot();
        unsubscribe();
        view.dispose();
        own?.disconnect();
      };
    },
  };
}

export default createWidget satisfies AnyWidget<Traits>;
