/**
 * The step timeline view (a table payload with a `timeline` field,
 * docs/widget-protocol.md): `div.rxnb-timeline`, shown instead of the table.
 *
 * Responsibilities:
 * - one lane `.rxnb-tl-lane` per row (a journaled step), under a `.rxnb-tl-run` group
 *   per run (runs in the order they first appear, lanes in row order), found again by
 *   key on each update, so a diff touches only the lanes it changed (every other lane
 *   keeps its nodes; only its bar moves when the axis changes);
 * - the shared axis `.rxnb-tl-axis` and each bar's place on it (`style.left` and
 *   `style.width` in % of the track);
 * - one interval timer per view, running only while some step is going (`end` null):
 *   each tick moves the axis's end to now and redraws the bars and durations;
 *   `dispose` stops it, and so does the kernel side going (connection.ts): what a
 *   going step does after that is not known here;
 * - at most `MAX_ROWS` lanes, and a note telling how many more steps there are.
 *
 * Rules:
 * 1. The axis runs from the earliest start to the latest end, or to now while a step
 *    is going (never before the latest end or start: a browser clock behind the
 *    kernel's must not cut bars short).
 * 2. A bar spans start..end; a going one start..now. The stylesheet keeps a bar at
 *    least 2 px wide, so an instant step shows. A step without a start has no bar.
 * 3. Every string from the store is text (`textContent`, attributes, `title`): run
 *    ids, labels, statuses, kinds, previews.
 * 4. Colours follow `data-status`, hatching follows `data-kind` (sleep, event), and a
 *    going lane has `data-going`: all in the stylesheet.
 * 5. Only when the model binds `fork` (`rx.widgets.timeline(fork=True)`): each lane has a
 *    `button.rxnb-tl-fork` that calls `fork` with its run and step (`from_step` = its
 *    seq); it stays disabled until the reply, and all are once the kernel side is gone.
 *    The reply shows in `.rxnb-tl-forked` above the axis: the new run's id, or the
 *    error (`role="alert"`), as text.
 */
import type { Caller } from "./calls";
import { formatValue } from "./cells";
import type { Connection } from "./connection";
import { formatDuration, formatTime } from "./formats";
import type { Json, Payload, Reply, Row, TimelineView } from "./protocol";
import { identify, MAX_ROWS } from "./table";

const TICK_MS = 1000;

const PARTS = ["run", "label", "seq", "kind", "status", "start", "end", "attempts", "preview"] as const;

/** Where each of the timeline's columns is in a row (-1: not there). */
type Columns = Record<(typeof PARTS)[number], number>;

/** What a lane shows of its row. */
export interface Step {
  run: string;
  label: string;
  seq: string;
  kind: string;
  status: string;
  /** Epoch seconds; null: not started (no bar). */
  start: number | null;
  /** Epoch seconds; null: still going (once started). */
  end: number | null;
  attempts: number;
  preview: string;
}

/** The axis: epoch seconds. */
export interface Axis {
  from: number;
  to: number;
}

function columnsOf(payload: Payload, view: TimelineView): Columns {
  const at = (name: string | null): number => (name === null ? -1 : payload.columns.indexOf(name));
  return Object.fromEntries(PARTS.map((part) => [part, at(view[part])])) as Columns;
}

function text(value: Json | undefined): string {
  return value === null || value === undefined ? "" : formatValue(value);
}

function time(value: Json | undefined): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** A row read through the `timeline` field's columns. */
export function stepOf(row: Row, columns: Columns): Step {
  const cell = (i: number): Json | undefined => (i < 0 ? undefined : row[i]);
  const attempts = cell(columns.attempts);
  return {
    run: text(cell(columns.run)),
    label: text(cell(columns.label)),
    seq: text(cell(columns.seq)),
    kind: text(cell(columns.kind)),
    status: text(cell(columns.status)),
    start: time(cell(columns.start)),
    end: time(cell(columns.end)),
    attempts: typeof attempts === "number" && Number.isFinite(attempts) ? attempts : 1,
    preview: text(cell(columns.preview)),
  };
}

function isGoing(step: Step): boolean {
  return step.start !== null && step.end === null;
}

/** Rule 1: the axis over `steps` at `now` (epoch seconds), or null when none started. */
export function axisOf(steps: Iterable<Step>, now: number): Axis | null {
  let from = Infinity;
  let to = -Infinity;
  let going = false;
  for (const { start, end } of steps) {
    if (start === null) continue;
    from = Math.min(from, start);
    to = Math.max(to, start, end ?? start);
    going ||= end === null;
  }
  if (from === Infinity) return null;
  return { from, to: going ? Math.max(to, now) : to };
}

/** A percentage as a style value: `25%`, `33.333%`. */
function percent(x: number): string {
  return `${Number(x.toFixed(3))}%`;
}

function setText(el: HTMLElement, value: string): void {
  if (el.textContent !== value) el.textContent = value;
}

function setAttribute(el: HTMLElement, name: string, value: string): void {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  return el;
}

/** One step: `.rxnb-tl-lane`, updated in place, part by part, as its row changes. */
class Lane {
  readonly el = element("div", "rxnb-tl-lane");
  /** The row last shown: an update with the same array (a diff left it alone) is skipped. */
  row: Row | null = null;
  step: Step;
  readonly #label = element("span", "rxnb-tl-label");
  readonly #bar = element("div", "rxnb-tl-bar");
  readonly #duration = element("span", "rxnb-tl-duration");
  readonly #preview = element("span", "rxnb-tl-preview");
  #attempts: HTMLSpanElement | null = null;
  /** Rule 5: the Fork button, when the model binds `fork`. */
  readonly fork: HTMLButtonElement | null = null;

  constructor(key: string | null, step: Step, onFork: ((lane: Lane) => void) | null = null) {
    if (key !== null) this.el.setAttribute("data-key", key);
    const track = element("div", "rxnb-tl-track");
    track.append(this.#bar);
    this.el.append(this.#label, track, this.#duration, this.#preview);
    if (onFork !== null) {
      const button = element("button", "rxnb-tl-fork");
      button.type = "button";
      button.textContent = "Fork";
      button.addEventListener("click", () => onFork(this));
      this.el.append(button);
      this.fork = button;
    }
    this.step = step;
    this.set(step);
  }

  get going(): boolean {
    return isGoing(this.step);
  }

  /** Show `step`'s text and attributes; only the parts that differ are written (rule 3). */
  set(step: Step): void {
    this.step = step;
    setAttribute(this.el, "data-status", step.status);
    setAttribute(this.el, "data-kind", step.kind);
    // The step's number, shown by the stylesheet in the lane's first column.
    setAttribute(this.el, "data-seq", step.seq);
    this.el.toggleAttribute("data-going", isGoing(step));
    setText(this.#label, step.label);
    if (this.#label.title !== step.label) this.#label.title = step.label;
    setText(this.#preview, step.preview);
    if (this.#preview.title !== step.preview) this.#preview.title = step.preview;
    if (this.fork !== null) {
      const title = `Fork run ${step.run} here: a new run replays its steps before ${step.seq} and runs on from step ${step.seq}`;
      if (this.fork.title !== title) this.fork.title = title;
    }
    if (step.attempts > 1) {
      this.#attempts ??= this.el.insertBefore(element("span", "rxnb-tl-attempts"), this.#preview);
      setText(this.#attempts, `×${step.attempts}`);
    } else {
      this.#attempts?.remove();
      this.#attempts = null;
    }
  }

  /** Put the bar on `axis` and show the duration, at `now` (epoch seconds; rule 2). */
  place(axis: Axis | null, now: number): void {
    const { start, end } = this.step;
    if (start === null || axis === null) {
      this.#bar.hidden = true;
      setText(this.#duration, "");
      return;
    }
    this.#bar.hidden = false;
    const until = Math.max(start, end ?? now);
    const span = axis.to - axis.from;
    const left = span > 0 ? Math.min(100, Math.max(0, ((start - axis.from) / span) * 100)) : 0;
    const width = span > 0 ? Math.min(100 - left, ((until - start) / span) * 100) : 0;
    if (this.#bar.style.left !== percent(left)) this.#bar.style.left = percent(left);
    if (this.#bar.style.width !== percent(width)) this.#bar.style.width = percent(width);
    setText(this.#duration, formatDuration((until - start) * 1000));
  }
}

/** One run's group: `.rxnb-tl-run[data-run]`, its head, then its lanes. */
interface Group {
  el: HTMLDivElement;
  head: HTMLDivElement;
}

function makeGroup(run: string): Group {
  const el = element("div", "rxnb-tl-run");
  el.setAttribute("data-run", run);
  const head = element("div", "rxnb-tl-run-head");
  head.textContent = run;
  // Without a run column (or with a null run) there is nothing to head the lanes with.
  head.hidden = run === "";
  el.append(head);
  return { el, head };
}

export class TimelinePanel {
  readonly root: HTMLDivElement;
  readonly #axis = element("div", "rxnb-tl-axis");
  readonly #axisFrom = element("span", "rxnb-tl-axis-start");
  readonly #axisTo = element("span", "rxnb-tl-axis-end");
  readonly #more = element("div", "rxnb-more");
  #layout = "";
  #columns: Columns | null = null;
  #lanes = new Map<string, Lane>();
  #groups = new Map<string, Group>();
  #timer: ReturnType<typeof setInterval> | null = null;
  #connection: Connection = "connected";
  readonly #caller: Caller | null;
  readonly #forked = element("div", "rxnb-tl-forked");
  /** Fork buttons whose call waits for its reply (rule 5). */
  readonly #forking = new Set<HTMLButtonElement>();
  readonly #forget: (() => void)[] = [];

  /** `caller`: the model's functions; a Fork button per step only if it has `fork`. */
  constructor(parent: HTMLElement, caller: Caller | null = null) {
    this.root = element("div", "rxnb-timeline");
    this.#caller = caller !== null && caller.functions.has("fork") ? caller : null;
    const scale = element("div", "rxnb-tl-scale");
    scale.append(this.#axisFrom, this.#axisTo);
    this.#axis.append(scale);
    this.#more.hidden = true;
    this.#forked.hidden = true;
    this.root.append(this.#forked, this.#axis, this.#more);
    this.root.toggleAttribute("data-fork", this.#caller !== null);
    parent.append(this.root);
  }

  /** Rule 5: call `fork` for `lane`'s step; show the reply. */
  #fork(lane: Lane): void {
    const button = lane.fork;
    if (this.#caller === null || button === null || this.#connection !== "connected") return;
    if (this.#forking.has(button)) return;
    this.#forking.add(button);
    button.disabled = true;
    const args = { run_id: lane.step.run, from_step: Number(lane.step.seq) };
    const forget = this.#caller.call("fork", args, (reply: Reply) => {
      this.#forking.delete(button);
      button.disabled = this.#connection !== "connected";
      this.#forked.hidden = false;
      if (reply.ok) {
        this.#forked.removeAttribute("role");
        this.#forked.setAttribute("data-state", "ok");
        this.#forked.textContent = `forked run ${args.run_id} from step ${args.from_step}: new run ${formatValue(reply.result)}`;
      } else {
        this.#forked.setAttribute("role", "alert");
        this.#forked.setAttribute("data-state", "error");
        this.#forked.textContent = `${reply.error.type}: ${reply.error.message}`;
      }
    });
    this.#forget.push(forget);
  }

  /** Whether the view's timer runs (some step is going). */
  get ticking(): boolean {
    return this.#timer !== null;
  }

  update(payload: Payload): void {
    const view = payload.timeline;
    if (view === undefined) return;
    const layout = JSON.stringify([view, payload.columns, payload.key]);
    if (layout !== this.#layout) {
      // A new `timeline` field comes as a full: columns may mean other things now.
      this.#layout = layout;
      this.#columns = columnsOf(payload, view);
      for (const group of this.#groups.values()) group.el.remove();
      this.#groups.clear();
      this.#lanes.clear();
    }
    const columns = this.#columns!;
    const entries = identify(payload);
    const lanes = new Map<string, Lane>();
    const runs = new Map<string, Lane[]>();
    for (const { id, key, row } of entries.slice(0, MAX_ROWS)) {
      let lane = this.#lanes.get(id);
      if (lane === undefined) {
        lane = new Lane(key, stepOf(row, columns), this.#caller === null ? null : (l) => this.#fork(l));
        if (lane.fork !== null) lane.fork.disabled = this.#connection !== "connected";
      }
      else if (lane.row !== row) lane.set(stepOf(row, columns));
      lane.row = row;
      lanes.set(id, lane);
      const run = runs.get(lane.step.run);
      if (run === undefined) runs.set(lane.step.run, [lane]);
      else run.push(lane);
    }
    this.#place(lanes, runs);
    this.#redraw(Date.now());
    this.#runTimer();
    const hidden = entries.length - lanes.size;
    this.#more.hidden = hidden <= 0;
    this.#more.textContent =
      hidden <= 0 ? "" : `… ${hidden.toLocaleString("en")} more ${hidden === 1 ? "step" : "steps"}`;
  }

  /** Whether the kernel side is there; once gone, the axis stops moving. */
  setConnection(connection: Connection): void {
    this.#connection = connection;
    this.#runTimer();
    for (const lane of this.#lanes.values()) {
      if (lane.fork !== null) lane.fork.disabled = connection !== "connected" || this.#forking.has(lane.fork);
    }
  }

  /** Stop the timer and forget calls waiting; the view is going away. */
  dispose(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    for (const forget of this.#forget) forget();
    this.root.remove();
  }

  /** Make the root hold `runs`' groups in order, each holding its lanes in order. */
  #place(lanes: Map<string, Lane>, runs: Map<string, Lane[]>): void {
    for (const [id, lane] of this.#lanes) if (lanes.get(id) !== lane) lane.el.remove();
    for (const [run, group] of this.#groups) if (!runs.has(run)) group.el.remove();
    const groups = new Map<string, Group>();
    // Walk the wanted order against the DOM; nodes already in place are not moved.
    let cursor = this.#axis.nextSibling;
    for (const [run, runLanes] of runs) {
      const group = this.#groups.get(run) ?? makeGroup(run);
      groups.set(run, group);
      if (group.el === cursor) cursor = cursor.nextSibling;
      else this.root.insertBefore(group.el, cursor);
      let at = group.head.nextSibling;
      for (const { el } of runLanes) {
        if (el === at) at = at.nextSibling;
        else group.el.insertBefore(el, at);
      }
    }
    this.#lanes = lanes;
    this.#groups = groups;
  }

  /** The axis at `nowMs` (epoch milliseconds), and every bar and duration on it. */
  #redraw(nowMs: number): void {
    const now = nowMs / 1000;
    const axis = axisOf([...this.#lanes.values()].map((lane) => lane.step), now);
    this.#axis.hidden = axis === null;
    for (const [el, at] of [
      [this.#axisFrom, axis?.from],
      [this.#axisTo, axis?.to],
    ] as const) {
      setText(el, at === undefined ? "" : formatTime(at, nowMs));
      const title = at === undefined ? "" : new Date(at * 1000).toISOString();
      if (el.title !== title) el.title = title;
    }
    for (const lane of this.#lanes.values()) lane.place(axis, now);
  }

  /** Tick every second while a step is going and the kernel side is there, else not at all. */
  #runTimer(): void {
    const going = this.#connection === "connected" && [...this.#lanes.values()].some((lane) => lane.going);
    if (going && this.#timer === null) {
      this.#timer = setInterval(() => this.#redraw(Date.now()), TICK_MS);
    } else if (!going && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}
