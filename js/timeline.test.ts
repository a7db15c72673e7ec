import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { formatTime } from "./formats";
import { applyMessage, normalizePayload, type Payload, type Row } from "./protocol";
import { LiveView } from "./render";
import { MAX_ROWS } from "./table";
import { axisOf } from "./timeline";
import { diff, stepRow, tablePayload, TIMELINE, TIMELINE_COLUMNS, timelinePayload } from "./testing";

/** A fixed local "now": 2024-05-06 14:30:00 in the test machine's time zone. */
const NOW = new Date(2024, 4, 6, 14, 30, 0).getTime();
/** Now, in epoch seconds: the steps' times are relative to it. */
const T = NOW / 1000;

let host: HTMLElement;
let view: LiveView;
let payload: Payload;

beforeEach(() => {
  vi.useFakeTimers({ now: NOW });
  host = document.body.appendChild(document.createElement("div"));
  view = new LiveView(host);
});

afterEach(() => {
  view.dispose();
  vi.useRealTimers();
  document.body.replaceChildren();
});

function show(next: Payload): void {
  payload = next;
  view.update(payload);
}

/** Apply a kernel message as the widget would, and show the result. */
function send(message: unknown): void {
  const outcome = applyMessage(payload, message);
  if (outcome.status !== "applied") throw new Error(`not applied: ${outcome.status}`);
  show(outcome.payload);
}

function q<E extends Element = HTMLElement>(selector: string, root: ParentNode = host): E {
  const found = root.querySelector<E>(selector);
  if (found === null) throw new Error(`nothing matches ${selector}`);
  return found;
}

function lane(run: string, seq: number): HTMLElement {
  return q(`.rxnb-tl-lane[data-key='["${run}",${seq}]']`);
}

function part(run: string, seq: number, name: string): HTMLElement {
  return q(`.rxnb-tl-${name}`, lane(run, seq));
}

/** A bar's place: [left, width], the style values in %. */
function bar(run: string, seq: number): [string, string] {
  const el = part(run, seq, "bar");
  return [el.style.left, el.style.width];
}

function keys(root: ParentNode = host): (string | null)[] {
  return [...root.querySelectorAll(".rxnb-tl-lane")].map((el) => el.getAttribute("data-key"));
}

function runs(): (string | null)[] {
  return [...host.querySelectorAll(".rxnb-timeline > .rxnb-tl-run")].map((el) => el.getAttribute("data-run"));
}

/** A finished workflow: load (10 s), a sleep (5 s), a failed-then-retried call (5 s). */
const finished: Row[] = [
  stepRow("r1", 0, "load", { kind: "query", start: T - 20, end: T - 10, preview: "3 rows" }),
  stepRow("r1", 1, "nap", { kind: "sleep", start: T - 10, end: T - 5 }),
  stepRow("r1", 2, "call", { start: T - 5, end: T, attempts: 3, preview: "ok" }),
];

describe("normalizePayload: timeline", () => {
  it("keeps a well-formed timeline field as it is", () => {
    const raw = timelinePayload(finished);
    expect(normalizePayload(raw)).toEqual(raw);
    expect(normalizePayload(raw).timeline).toEqual(TIMELINE);
  });

  it("reads missing or mistyped optional parts as none", () => {
    const timeline = { start: "started_at", end: "finished_at", label: 3, preview: null };
    expect(normalizePayload({ ...timelinePayload([]), timeline }).timeline).toEqual({
      run: null,
      label: null,
      seq: null,
      kind: null,
      status: null,
      start: "started_at",
      end: "finished_at",
      attempts: null,
      preview: null,
    });
  });

  it.each([
    { name: "not an object", timeline: "started_at" },
    { name: "a list", timeline: [TIMELINE] },
    { name: "without start", timeline: { ...TIMELINE, start: undefined } },
    { name: "end not a string", timeline: { ...TIMELINE, end: 5 } },
    { name: "null", timeline: null },
  ])("a malformed timeline field is absent: $name", ({ timeline }) => {
    expect("timeline" in normalizePayload({ ...timelinePayload([]), timeline })).toBe(false);
  });

  it("is absent from a payload that is not a table", () => {
    expect("timeline" in normalizePayload({ ...timelinePayload([]), kind: "json" })).toBe(false);
  });

  it("a malformed timeline field shows the rows as a plain table", () => {
    show(tablePayload([]));
    send({ type: "full", payload: { ...timelinePayload(finished), timeline: { ...TIMELINE, start: 1 } } });
    expect(q(".rxnb-live").dataset.kind).toBe("table");
    expect(host.querySelector(".rxnb-timeline")).toBeNull();
    expect(host.querySelectorAll("tbody tr")).toHaveLength(3);
    expect(q(".rxnb-count").textContent).toBe("3 rows");
  });
});

describe("rendering", () => {
  it("shows a timeline instead of the table: one lane per step, under its run", () => {
    show(timelinePayload(finished));
    expect(q(".rxnb-live").dataset.kind).toBe("timeline");
    expect(q(".rxnb-live").contains(q("div.rxnb-timeline"))).toBe(true);
    expect(host.querySelector("table")).toBeNull();
    expect(q(".rxnb-count").hidden).toBe(true);
    expect(runs()).toEqual(["r1"]);
    expect(q(".rxnb-tl-run-head").textContent).toBe("r1");
    expect(keys()).toEqual(['["r1",0]', '["r1",1]', '["r1",2]']);
    expect(lane("r1", 1).dataset).toMatchObject({ status: "done", kind: "sleep", seq: "1" });
    expect(lane("r1", 0).dataset.kind).toBe("query");
    expect(part("r1", 0, "label").textContent).toBe("load");
    expect(part("r1", 0, "track").contains(part("r1", 0, "bar"))).toBe(true);
    expect(lane("r1", 0).hasAttribute("data-going")).toBe(false);
  });

  it("durations in the elapsed style, ×N only after retries, the preview with its title", () => {
    show(
      timelinePayload([
        ...finished,
        stepRow("r1", 3, "fast", { start: T, end: T + 0.85 }),
        stepRow("r1", 4, "long", { start: T, end: T + 245, preview: "line one\nline two ".repeat(20) }),
      ]),
    );
    expect(part("r1", 0, "duration").textContent).toBe("10.0 s");
    expect(part("r1", 3, "duration").textContent).toBe("850 ms");
    expect(part("r1", 4, "duration").textContent).toBe("4 m 05 s");
    expect(part("r1", 2, "attempts").textContent).toBe("×3");
    expect(lane("r1", 0).querySelector(".rxnb-tl-attempts")).toBeNull();
    expect(part("r1", 0, "preview").textContent).toBe("3 rows");
    expect(part("r1", 0, "preview").title).toBe("3 rows");
    expect(part("r1", 4, "preview").title).toBe("line one\nline two ".repeat(20));
    expect(part("r1", 1, "preview").textContent).toBe("");
  });

  it("a failed step, a waiting one, and a step in its own run", () => {
    show(
      timelinePayload([
        stepRow("r1", 0, "charge", { status: "failed", start: T - 2, end: T - 1, preview: "CardError: declined" }),
        stepRow("r2", 0, "approval", { kind: "event", status: "waiting", start: T - 2, end: null }),
      ]),
    );
    expect(lane("r1", 0).dataset.status).toBe("failed");
    expect(part("r1", 0, "preview").textContent).toBe("CardError: declined");
    expect(lane("r2", 0).dataset).toMatchObject({ status: "waiting", kind: "event" });
    expect(lane("r2", 0).hasAttribute("data-going")).toBe(true);
  });

  it("the stylesheet hatches sleeps and waits, and stills the going edge under reduced motion", () => {
    const css = readFileSync("js/widget.css", "utf8");
    const hatched = /\[data-kind="sleep"\] \.rxnb-tl-bar,\s*\.rxnb-tl-lane\[data-kind="event"\] \.rxnb-tl-bar\s*{/;
    expect(css).toMatch(new RegExp(`${hatched.source}[^}]*repeating-linear-gradient`));
    expect(css).toMatch(/\.rxnb-tl-bar\s*{[^}]*min-width:\s*2px/);
    expect(css).toMatch(/\[data-going\] \.rxnb-tl-bar::after\s*{[^}]*animation:\s*rxnb-tl-pulse/);
    expect(css).toMatch(
      /@media \(prefers-reduced-motion: reduce\)\s*{[^@]*\[data-going\] \.rxnb-tl-bar::after\s*{\s*animation:\s*none/,
    );
  });
});

describe("axis", () => {
  it("runs from the earliest start to the latest end; bars are placed on it in %", () => {
    show(timelinePayload(finished));
    expect(bar("r1", 0)).toEqual(["0%", "50%"]);
    expect(bar("r1", 1)).toEqual(["50%", "25%"]);
    expect(bar("r1", 2)).toEqual(["75%", "25%"]);
    expect(q(".rxnb-tl-axis-start").textContent).toBe(formatTime(T - 20, NOW));
    expect(q(".rxnb-tl-axis-end").textContent).toBe("14:30:00");
    expect(q(".rxnb-tl-axis-end").title).toBe(new Date(NOW).toISOString());
  });

  it("thirds, and an instant step: a bar of no width (the stylesheet widens it)", () => {
    show(
      timelinePayload([
        stepRow("r1", 0, "a", { start: T - 30, end: T - 20 }),
        stepRow("r1", 1, "now", { kind: "value", start: T - 10, end: T - 10 }),
      ]),
    );
    expect(bar("r1", 0)).toEqual(["0%", "50%"]);
    expect(bar("r1", 1)).toEqual(["100%", "0%"]);
    expect(part("r1", 1, "duration").textContent).toBe("0 ms");
    send(diff(1, { inserted: [[2, stepRow("r1", 2, "b", { start: T - 25, end: T })]] }));
    expect(bar("r1", 0)).toEqual(["0%", "33.333%"]);
    expect(bar("r1", 2)).toEqual(["16.667%", "83.333%"]);
  });

  it("one instant step alone, a step not started, and no steps at all", () => {
    show(timelinePayload([stepRow("r1", 0, "a", { start: T, end: T }), stepRow("r1", 1, "b", { start: null })]));
    expect(bar("r1", 0)).toEqual(["0%", "0%"]);
    expect(part("r1", 1, "bar").hidden).toBe(true);
    expect(part("r1", 1, "duration").textContent).toBe("");
    expect(q(".rxnb-tl-axis").hidden).toBe(false);
    send(diff(1, { removed: [["r1", 0], ["r1", 1]] }));
    expect(q(".rxnb-tl-axis").hidden).toBe(true);
    expect(host.querySelectorAll(".rxnb-tl-run")).toHaveLength(0);
  });

  it("the pure axis: latest end, or now while a step is going", () => {
    const step = { run: "", label: "", seq: "", kind: "", status: "", attempts: 1, preview: "" };
    expect(axisOf([{ ...step, start: 5, end: 9 }, { ...step, start: 1, end: 3 }], 100)).toEqual({ from: 1, to: 9 });
    const going = { ...step, start: 5, end: null };
    expect(axisOf([going, { ...step, start: 1, end: 3 }], 100)).toEqual({ from: 1, to: 100 });
    // A browser clock behind the kernel's does not cut the axis short.
    expect(axisOf([going, { ...step, start: 1, end: 30 }], 20)).toEqual({ from: 1, to: 30 });
    expect(axisOf([{ ...step, start: null, end: null }], 100)).toBeNull();
  });
});

describe("grouping by run", () => {
  const two: Row[] = [
    stepRow("r2", 0, "a", { start: T - 4, end: T - 3 }),
    stepRow("r2", 1, "b", { start: T - 3, end: T - 2 }),
    stepRow("r1", 0, "a", { start: T - 2, end: T }),
  ];

  it("one group per run, in the order runs first appear, sharing one axis", () => {
    show(timelinePayload(two));
    expect(runs()).toEqual(["r2", "r1"]);
    const [r2, r1] = [...host.querySelectorAll<HTMLElement>(".rxnb-tl-run")];
    expect(q(".rxnb-tl-run-head", r2!).textContent).toBe("r2");
    expect(keys(r2!)).toEqual(['["r2",0]', '["r2",1]']);
    expect(keys(r1!)).toEqual(['["r1",0]']);
    expect(bar("r2", 0)).toEqual(["0%", "25%"]);
    expect(bar("r1", 0)).toEqual(["50%", "50%"]);
  });

  it("a diff adds a run's group, and removes it with its last step", () => {
    show(timelinePayload(two));
    const r2 = q(".rxnb-tl-run[data-run='r2']");
    send(diff(1, { inserted: [[3, stepRow("r3", 0, "x", { start: T - 4, end: T })]] }));
    expect(runs()).toEqual(["r2", "r1", "r3"]);
    send(diff(2, { removed: [["r1", 0]] }));
    expect(runs()).toEqual(["r2", "r3"]);
    expect(q(".rxnb-tl-run[data-run='r2']")).toBe(r2);
  });

  it("without a run column: one group, without a head", () => {
    show(timelinePayload(two, { timeline: { ...TIMELINE, run: null } }));
    expect(runs()).toEqual([""]);
    expect(q(".rxnb-tl-run-head").hidden).toBe(true);
    expect(keys()).toHaveLength(3);
  });
});

describe("going steps", () => {
  const going: Row[] = [
    stepRow("r1", 0, "load", { start: T - 10, end: T - 5 }),
    stepRow("r1", 1, "think", { start: T - 5, end: null }),
  ];

  it("are drawn up to now, extending with time, on one timer", () => {
    show(timelinePayload(going));
    expect(lane("r1", 1).hasAttribute("data-going")).toBe(true);
    expect(bar("r1", 0)).toEqual(["0%", "50%"]);
    expect(bar("r1", 1)).toEqual(["50%", "50%"]);
    expect(part("r1", 1, "duration").textContent).toBe("5.0 s");
    expect(q(".rxnb-tl-axis-end").textContent).toBe("14:30:00");
    expect(vi.getTimerCount()).toBe(1);

    vi.advanceTimersByTime(10_000);
    expect(bar("r1", 0)).toEqual(["0%", "25%"]);
    expect(bar("r1", 1)).toEqual(["25%", "75%"]);
    expect(part("r1", 1, "duration").textContent).toBe("15.0 s");
    expect(part("r1", 0, "duration").textContent).toBe("5.0 s");
    expect(q(".rxnb-tl-axis-end").textContent).toBe("14:30:10");
    expect(vi.getTimerCount()).toBe(1);
  });

  it("the timer stops once no step is going, and starts again with the next", () => {
    show(timelinePayload(going));
    vi.advanceTimersByTime(5_000);
    send(diff(1, { cells: [[["r1", 1], 6, T + 5], [["r1", 1], 4, "done"]] }));
    expect(vi.getTimerCount()).toBe(0);
    expect(lane("r1", 1).hasAttribute("data-going")).toBe(false);
    expect(part("r1", 1, "duration").textContent).toBe("10.0 s");
    expect(bar("r1", 1)).toEqual(["33.333%", "66.667%"]);
    vi.advanceTimersByTime(5_000);
    expect(bar("r1", 1)).toEqual(["33.333%", "66.667%"]);

    send(diff(2, { inserted: [[2, stepRow("r1", 2, "more", { start: T + 10, end: null })]] }));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(10_000); // now T + 20
    expect(bar("r1", 2)).toEqual(["66.667%", "33.333%"]);
  });

  it("a finished view has no timer, and disposing stops a running one", () => {
    show(timelinePayload(finished));
    expect(vi.getTimerCount()).toBe(0);
    show(timelinePayload(going, { version: 2 }));
    expect(vi.getTimerCount()).toBe(1);
    view.dispose();
    expect(vi.getTimerCount()).toBe(0);
    expect(host.querySelector(".rxnb-timeline")).toBeNull();
  });

  it("the timer stops when the body becomes another kind", () => {
    show(timelinePayload(going));
    show({ ...payload, kind: "value", value: 1, version: 2 });
    expect(vi.getTimerCount()).toBe(0);
    expect(host.querySelector(".rxnb-timeline")).toBeNull();
  });
});

describe("updates", () => {
  const rows: Row[] = [
    stepRow("r1", 0, "a", { start: T - 4, end: T - 3, preview: "one" }),
    stepRow("r1", 1, "b", { start: T - 3, end: T - 2, preview: "two" }),
    stepRow("r1", 2, "c", { start: T - 2, end: T - 1, preview: "three" }),
    stepRow("r2", 0, "d", { start: T - 4, end: T - 1, preview: "four" }),
  ];

  it("a diff patches only the lanes it names; the others keep their nodes", () => {
    show(timelinePayload(rows));
    const before = new Map([...host.querySelectorAll(".rxnb-tl-lane")].map((el) => [el.getAttribute("data-key"), el]));
    const untouchedText = part("r2", 0, "preview").firstChild;
    const observer = new MutationObserver(() => {});
    observer.observe(q(".rxnb-timeline"), { childList: true, subtree: true, characterData: true });

    send(
      diff(1, {
        removed: [["r1", 0]],
        cells: [[["r1", 2], 8, "three, edited"]],
        inserted: [[2, stepRow("r1", 3, "e", { start: T - 1, end: T - 1 })]],
      }),
    );

    // Only r1's group changed: [0] left, [3] came in (and got its duration), [2]'s preview.
    const records = observer.takeRecords();
    observer.disconnect();
    const touched = records.map((r) => {
      const target = r.target as Element;
      const owner = target.closest(".rxnb-tl-lane") ?? target;
      return owner.getAttribute("data-key") ?? `run ${owner.getAttribute("data-run")}`;
    });
    expect(new Set(touched)).toEqual(new Set(["run r1", '["r1",2]', '["r1",3]']));
    expect(keys()).toEqual(['["r1",1]', '["r1",2]', '["r1",3]', '["r2",0]']);
    for (const key of ['["r1",1]', '["r1",2]', '["r2",0]']) {
      expect(host.querySelector(`.rxnb-tl-lane[data-key='${key}']`)).toBe(before.get(key));
    }
    expect(part("r2", 0, "preview").firstChild).toBe(untouchedText);
    expect(part("r1", 2, "preview").textContent).toBe("three, edited");
    expect(before.get('["r1",0]')!.isConnected).toBe(false);
  });

  it("a changed row updates its lane in place: status, attempts, label", () => {
    show(timelinePayload(rows));
    const el = lane("r1", 1);
    send(diff(1, { changed: [stepRow("r1", 1, "b2", { status: "failed", start: T - 3, end: T - 2, attempts: 2 })] }));
    expect(lane("r1", 1)).toBe(el);
    expect(el.dataset.status).toBe("failed");
    expect(part("r1", 1, "label").textContent).toBe("b2");
    expect(part("r1", 1, "attempts").textContent).toBe("×2");
    expect(part("r1", 1, "preview").textContent).toBe("");
    send(diff(2, { cells: [[["r1", 1], 7, 1]] }));
    expect(el.querySelector(".rxnb-tl-attempts")).toBeNull();
  });

  it("a new timeline field rebuilds the lanes", () => {
    show(timelinePayload(rows));
    const el = lane("r1", 1);
    send({ type: "full", payload: timelinePayload(rows, { version: 5, timeline: { ...TIMELINE, label: "preview" } }) });
    expect(lane("r1", 1)).not.toBe(el);
    expect(part("r1", 1, "label").textContent).toBe("two");
  });

  it(`shows at most ${MAX_ROWS} lanes, and tells how many more`, () => {
    const many = Array.from({ length: MAX_ROWS + 2 }, (_, i) => stepRow("r1", i, `s${i}`, { start: T, end: T + 1 }));
    show(timelinePayload(many));
    expect(host.querySelectorAll(".rxnb-tl-lane")).toHaveLength(MAX_ROWS);
    expect(q(".rxnb-timeline > .rxnb-more").textContent).toBe("… 2 more steps");
    send(diff(1, { removed: [["r1", 0], ["r1", 1]] }));
    expect(q(".rxnb-timeline > .rxnb-more").hidden).toBe(true);
  });
});

describe("store strings are text, never markup", () => {
  const evil = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>"] as const;

  it("in run ids, labels, statuses, kinds, seqs and previews", () => {
    const row = [evil[0], evil[1], evil[0], evil[1], evil[0], T - 1, T, 2, evil[1]];
    show(timelinePayload([row], { key: [0] }));
    expect(host.querySelectorAll("img, script")).toHaveLength(0);
    const el = q(".rxnb-tl-lane");
    expect(q(".rxnb-tl-run-head").textContent).toBe(evil[0]);
    expect(q(".rxnb-tl-run").getAttribute("data-run")).toBe(evil[0]);
    expect(q(".rxnb-tl-label").textContent).toBe(evil[0]);
    expect(el.dataset).toMatchObject({ seq: evil[1], kind: evil[1], status: evil[0] });
    expect(q(".rxnb-tl-preview").textContent).toBe(evil[1]);
    expect(q(".rxnb-tl-preview").title).toBe(evil[1]);
    expect(TIMELINE_COLUMNS).toHaveLength(row.length);
  });
});
