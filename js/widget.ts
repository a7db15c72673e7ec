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

/** A state fed by `model`'s messages and `payload` trait, and how to stop feeding it. */
function connect(model: Model): { state: LiveState; disconnect: () => void } {
  const state = new LiveState(model.get("payload"), (content) => model.send(content));
  const onMessage = (content: unknown): void => state.receive(content);
  const onPayload = (): void => state.replace(model.get("payload"));
  model.on("msg:custom", onMessage);
  model.on("change:payload", onPayload);
  return {
    state,
    disconnect: () => {
      model.off("msg:custom", onMessage);
      model.off("change:payload", onPayload);
      state.dispose();
    },
  };
}

export function createWidget() {
  let shared: LiveState | null = null;

  return {
    initialize({ model }: { model: Model }): () => void {
      const { state, disconnect } = connect(model);
      shared = state;
      return () => {
        disconnect();
        if (shared === state) shared = null;
      };
    },

    render({ model, el }: { model: Model; el: HTMLElement }): () => void {
      // A host that skipped `initialize` still gets a working view, fed on its own.
      let state = shared;
      let own: ReturnType<typeof connect> | null = null;
      if (state === null) {
        own = connect(model);
        state = own.state;
      }
      const view = new LiveView(el);
      view.update(state.payload, state.sync);
      const unsubscribe = state.subscribe((payload, sync) => view.update(payload, sync));
      const showSnapshot = hideSnapshot(el.ownerDocument, model.get("snapshot_id"));
      return () => {
        showSnapshot();
        unsubscribe();
        own?.disconnect();
        view.dispose();
      };
    },
  };
}

export default createWidget satisfies AnyWidget<Traits>;
