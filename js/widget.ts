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
 *
 * The model's `ConnectionWatch` (connection.ts) is per model too: when its kernel goes,
 * every view of it shows so at once.
 */
import type { AnyModel, AnyWidget } from "@anywidget/types";
import { Calls } from "./calls";
import { ConnectionWatch } from "./connection";
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

/** The model's per-model parts: its live result, its calls and its kernel's presence. */
interface Feed {
  state: LiveState;
  calls: Calls;
  connection: ConnectionWatch;
  stop: () => void;
}

/**
 * A state fed by `model`'s messages and `payload` trait, the calls answered by its
 * replies, the watch on its kernel side, and how to stop them. The `functions` trait is
 * read once: the kernel binds a widget's functions when it makes the widget.
 */
function feed(model: Model): Feed {
  const state = new LiveState(model.get("payload"), (content) => model.send(content));
  const calls = new Calls(model.get("functions"), (content) => model.send(content));
  const connection = new ConnectionWatch(model);
  const onMessage = (content: unknown): void => {
    if (!calls.receive(content)) state.receive(content);
  };
  const onPayload = (): void => state.replace(model.get("payload"));
  model.on("msg:custom", onMessage);
  model.on("change:payload", onPayload);
  if (connection.state === "disconnected") state.halt();
  else state.confirm(); // the state this page starts from may be older than the kernel's
  connection.subscribe(() => state.halt());
  return {
    state,
    calls,
    connection,
    stop: () => {
      model.off("msg:custom", onMessage);
      model.off("change:payload", onPayload);
      connection.dispose();
      state.dispose();
      calls.dispose();
    },
  };
}

export function createWidget() {
  let shared: Feed | null = null;

  return {
    initialize({ model }: { model: Model }): () => void {
      const parts = feed(model);
      shared = parts;
      return () => {
        parts.stop();
        if (shared === parts) shared = null;
      };
    },

    render({ model, el }: { model: Model; el: HTMLElement }): () => void {
      // A host that skipped `initialize` still gets a working view, fed on its own.
      let parts = shared;
      let own: Feed | null = null;
      if (parts === null) {
        own = feed(model);
        parts = own;
      }
      const { state, calls, connection } = parts;
      const view = new LiveView(el, calls);
      view.update(state.payload, state.sync);
      view.setConnection(connection.state);
      const unsubscribe = state.subscribe((payload, sync) => view.update(payload, sync));
      const unwatch = connection.subscribe((now) => view.setConnection(now));
      const showSnapshot = hideSnapshot(el.ownerDocument, model.get("snapshot_id"));
      return () => {
        showSnapshot();
        unsubscribe();
        unwatch();
        view.dispose();
        own?.stop();
      };
    },
  };
}

export default createWidget satisfies AnyWidget<Traits>;
