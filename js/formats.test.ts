import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { formatDuration, formatTime } from "./formats";
import { readFileSync } from "node:fs";
import { applyMessage, type Payload, type Row } from "./protocol";
import { LiveView } from "./render";
import { diff, mountView, RUN_COLUMNS, runRow, runsPayload, sentCalls } from "./testing";

/** A fixed local "now": 2024-05-06 14:30:00 in the test machine's time zone. */
const NOW = new Date(2024, 4, 6, 14, 30, 0).getTime();
const nowSeconds = NOW / 1000;

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

function send(message: unknown): void {
  const outcome = applyMessage(payload, message);
  if (outcome.status !== "applied") throw new Error(`not applied: ${outcome.status}`);
  show(outcome.payload);
}

function cell(key: string, column: string): HTMLTableCellElement {
  const td = host.querySelector<HTMLTableCellElement>(`tr[data-key='["${key}"]'] td[data-col="${column}"]`);
  if (td === null) throw new Error(`no cell ${column} on row ${key}`);
  return td;
}

describe("status", () => {
  it.each([
    { status: "queued", spins: true },
    { status: "running", spins: true },
    { status: "sleeping", spins: true },
    { status: "waiting", spins: true },
    { status: "succeeded", spins: false },
    { status: "failed", spins: false },
    { status: "cancelled", spins: false },
  ])("$status: a badge, spinning $spins", ({ status, spins }) => {
    show(runsPayload([runRow("a", status)]));
    const badge = cell("a", "status").querySelector<HTMLElement>("span.rxnb-badge")!;
    expect(badge.getAttribute("data-status")).toBe(status);
    expect(badge.textContent).toBe(status);
    expect(badge.querySelector(".rxnb-spinner") !== null).toBe(spins);
  });

  it("a running row whose cancel was requested reads cancelling, and spins", () => {
    show(runsPayload([runRow("a", "running", { cancel: true }), runRow("b", "queued", { cancel: true })]));
    const badge = cell("a", "status").querySelector<HTMLElement>(".rxnb-badge")!;
    expect(badge.getAttribute("data-status")).toBe("cancelling");
    expect(badge.textContent).toBe("cancelling");
    expect(badge.querySelector(".rxnb-spinner")).not.toBeNull();
    expect(cell("b", "status").textContent).toBe("queued");

    send(diff(1, { changed: [runRow("a", "cancelled", { cancel: true })] }));
    expect(cell("a", "status").querySelector(".rxnb-badge")!.getAttribute("data-status")).toBe("cancelled");
    expect(cell("a", "status").querySelector(".rxnb-spinner")).toBeNull();
  });

  it("without a cancel_requested column, running stays running", () => {
    show(runsPayload([["a", "running"]], { columns: ["id", "status"] }));
    expect(cell("a", "status").textContent).toBe("running");
  });

  it("null is the plain null mark", () => {
    show(runsPayload([runRow("a", "x")], { rows: [["a", null, true, null, [null, null], null]] }));
    expect(cell("a", "status").querySelector(".rxnb-badge")).toBeNull();
    expect(cell("a", "status").querySelector(".rxnb-null")).not.toBeNull();
  });

  it("the spinner stops for reduced motion (CSS)", () => {
    // vitest runs from the project root (npm test); it does not load CSS files as text.
    const css = readFileSync("js/widget.css", "utf8");
    expect(css).toMatch(/\.rxnb-spinner\s*{[^}]*animation:\s*rxnb-spin/);
    expect(css).toMatch(/@media \(prefers-reduced-motion: reduce\)\s*{[^@]*\.rxnb-spinner\s*{\s*animation:\s*none/);
  });
});

describe("progress", () => {
  it("a bar when total is positive, and the message as text", () => {
    show(
      runsPayload([
        runRow("a", "running", { progress: { done: 3, total: 10, message: "step 3" } }),
        runRow("b", "running", { progress: { done: 0, total: 0, message: "warming up" } }),
        runRow("c", "queued", { progress: null }),
        runRow("d", "running", { progress: JSON.stringify({ done: 1, total: 4, message: "from TEXT" }) }),
      ]),
    );
    const bar = cell("a", "progress").querySelector("progress")!;
    expect(bar.value).toBe(3);
    expect(bar.max).toBe(10);
    expect(cell("a", "progress").querySelector(".rxnb-progress")!.textContent).toBe("step 3");

    expect(cell("b", "progress").querySelector("progress")).toBeNull();
    expect(cell("b", "progress").querySelector(".rxnb-progress")!.textContent).toBe("warming up");

    expect(cell("c", "progress").childNodes).toHaveLength(0);
    expect(cell("c", "progress").textContent).toBe("");

    expect(cell("d", "progress").querySelector("progress")!.value).toBe(1);
    expect(cell("d", "progress").textContent).toBe("from TEXT");
  });

  it("updates through a diff", () => {
    show(runsPayload([runRow("a", "running", { progress: { done: 1, total: 4, message: "" } })]));
    send(diff(1, { changed: [runRow("a", "running", { progress: { done: 4, total: 4, message: "done" } })] }));
    expect(cell("a", "progress").querySelector("progress")!.value).toBe(4);
    expect(cell("a", "progress").textContent).toBe("done");
  });
});

describe("elapsed", () => {
  it.each([
    { ms: 850, text: "850 ms" },
    { ms: 999.4, text: "999 ms" },
    { ms: 999.6, text: "1.0 s" },
    { ms: 12_345, text: "12.3 s" },
    { ms: 59_999, text: "59.9 s" },
    { ms: 245_000, text: "4 m 05 s" },
    { ms: 7_380_000, text: "2 h 03 m" },
    { ms: -5, text: "0 ms" },
  ])("formatDuration($ms) is $text", ({ ms, text }) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("finished minus started; empty when not started", () => {
    show(
      runsPayload([
        runRow("a", "succeeded", { started: 100, finished: 112.34 }),
        runRow("b", "queued"),
        runRow("c", "succeeded", { started: 100, finished: 100.85 }),
      ]),
    );
    expect(cell("a", "elapsed").textContent).toBe("12.3 s");
    expect(cell("b", "elapsed").textContent).toBe("");
    expect(cell("b", "elapsed").querySelector(".rxnb-null")).toBeNull();
    expect(cell("c", "elapsed").textContent).toBe("850 ms");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("ticks every second while running, on one timer, which stops when no row runs", () => {
    show(
      runsPayload([
        runRow("a", "running", { started: nowSeconds - 3 }),
        runRow("b", "running", { started: nowSeconds - 61 }),
      ]),
    );
    expect(cell("a", "elapsed").textContent).toBe("3.0 s");
    expect(cell("b", "elapsed").textContent).toBe("1 m 01 s");
    expect(vi.getTimerCount()).toBe(1);

    vi.advanceTimersByTime(1000);
    expect(cell("a", "elapsed").textContent).toBe("4.0 s");
    expect(cell("b", "elapsed").textContent).toBe("1 m 02 s");
    vi.advanceTimersByTime(2000);
    expect(cell("a", "elapsed").textContent).toBe("6.0 s");

    // a finishes: its cell stops; b still ticks on the same timer.
    send(diff(1, { changed: [runRow("a", "succeeded", { started: nowSeconds - 3, finished: nowSeconds + 2 })] }));
    expect(cell("a", "elapsed").textContent).toBe("5.0 s");
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(1000);
    expect(cell("a", "elapsed").textContent).toBe("5.0 s");
    expect(cell("b", "elapsed").textContent).toBe("1 m 05 s");

    send(diff(2, { removed: [["b"]] }));
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stops ticking when the view is disposed", () => {
    show(runsPayload([runRow("a", "running", { started: nowSeconds })]));
    expect(vi.getTimerCount()).toBe(1);
    view.dispose();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stops ticking when the body becomes another kind", () => {
    show(runsPayload([runRow("a", "running", { started: nowSeconds })]));
    show({ ...payload, kind: "value", value: 1, version: 2 });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("time", () => {
  it("today: local HH:MM:SS; another day: with the date; the title is ISO", () => {
    const today = new Date(2024, 4, 6, 9, 5, 7).getTime() / 1000;
    const before = new Date(2023, 11, 31, 23, 59, 58).getTime() / 1000;
    show(runsPayload([runRow("a", "queued", { created: today }), runRow("b", "queued", { created: before })]));
    expect(cell("a", "created_at").textContent).toBe("09:05:07");
    expect(cell("a", "created_at").title).toBe(new Date(today * 1000).toISOString());
    expect(cell("b", "created_at").textContent).toBe("2023-12-31 23:59:58");
    expect(formatTime(today, NOW)).toBe("09:05:07");
  });
});

describe("json", () => {
  it("compact JSON, also of a string holding JSON", () => {
    const rows: Row[] = [
      ["a", { x: [1, 2] }],
      ["b", '{ "y" : 1 }'],
      ["c", "not json"],
    ];
    show(runsPayload(rows, { columns: ["id", "args"], formats: { args: "json" }, actions: [] }));
    expect(cell("a", "args").textContent).toBe('{"x":[1,2]}');
    expect(cell("b", "args").textContent).toBe('{"y":1}');
    expect(cell("c", "args").textContent).toBe("not json");
  });
});

describe("formats", () => {
  it("code is plain text, marked for the one-line monospace style", () => {
    show(runsPayload([["a", "running"]], { columns: ["id", "status"], formats: { id: "code" } }));
    expect(cell("a", "id").textContent).toBe("a");
    expect(cell("a", "id").getAttribute("data-format")).toBe("code");
    expect(cell("a", "id").children.length).toBe(0);
  });

  it("an unknown format, or one on a missing column, reads as plain text", () => {
    const raw = { ...runsPayload([["a", "running"]], { columns: ["id", "status"] }), formats: { status: "html" } };
    send({ type: "full", payload: raw });
    expect(cell("a", "status").textContent).toBe("running");
    expect(cell("a", "status").querySelector(".rxnb-badge")).toBeNull();
    expect(cell("a", "status").hasAttribute("data-format")).toBe(false);
  });

  it("a column named like an Object property has no format", () => {
    show(runsPayload([["a", "running"]], { columns: ["id", "constructor"], formats: {} }));
    expect(cell("a", "constructor").textContent).toBe("running");
  });

  it("sorting elapsed sorts by duration", () => {
    show(
      runsPayload([
        runRow("a", "succeeded", { started: 100, finished: 200 }),
        runRow("b", "succeeded", { started: 50, finished: 60 }),
        runRow("c", "running", { started: nowSeconds - 30 }),
      ]),
    );
    host.querySelector<HTMLButtonElement>('th[data-col="elapsed"] button')!.click();
    const order = [...host.querySelectorAll("tbody tr")].map((tr) => tr.getAttribute("data-key"));
    expect(order).toEqual(['["b"]', '["c"]', '["a"]']);
  });
});

describe("store strings in formatted cells stay text", () => {
  const evil = "<img src=x onerror=alert(1)>";

  it("in a status, a progress message and a json cell", () => {
    show(
      runsPayload([
        runRow("a", evil, { progress: { done: 1, total: 2, message: evil } }),
        runRow("b", "running", { progress: evil }),
      ]),
    );
    expect(host.querySelectorAll("img, script")).toHaveLength(0);
    const badge = cell("a", "status").querySelector(".rxnb-badge")!;
    expect(badge.textContent).toBe(evil);
    expect(badge.getAttribute("data-status")).toBe(evil);
    expect(cell("a", "progress").textContent).toBe(evil);
    expect(cell("b", "progress").textContent).toBe(evil);

    show(runsPayload([["a", evil]], { columns: ["id", "args"], formats: { args: "json" }, actions: [] }));
    expect(host.querySelectorAll("img, script")).toHaveLength(0);
    expect(cell("a", "args").textContent).toBe(evil);
  });
});

describe("error", () => {
  // What rx.runs() sends: the error as one line in `note`, its traceback in a hidden `details`.
  const columns = ["id", "status", "note", "details"];
  const trace = 'Traceback (most recent call last):\n  File "job.py", line 9, in fetch\nValueError: bad url';
  const errors = (rows: Row[], extra: Partial<Payload> = {}) =>
    runsPayload(rows, {
      columns,
      formats: { status: "status", note: "error" },
      hidden: ["details"],
      actions: [],
      ...extra,
    });

  it("the one line as text, the details folded under it", () => {
    show(errors([["a", "failed", "ValueError: bad url", trace]]));
    const td = cell("a", "note");
    expect(td.getAttribute("data-format")).toBe("error");
    expect(td.firstChild!.textContent).toBe("ValueError: bad url");
    const details = td.querySelector<HTMLDetailsElement>("details.rxnb-detail")!;
    expect(details.open).toBe(false);
    expect(details.querySelector("summary")!.textContent).toBe("details");
    expect(details.querySelector("pre")!.textContent).toBe(trace);
  });

  it("without details (null, empty, not text, no such column) a plain cell", () => {
    show(
      errors([
        ["a", "failed", "ValueError: bad url", null],
        ["b", "failed", "ValueError: bad url", ""],
        ["c", "failed", "ValueError: bad url", { lines: 3 }],
        ["d", "succeeded", null, null],
      ]),
    );
    for (const key of ["a", "b", "c"]) {
      expect(cell(key, "note").textContent).toBe("ValueError: bad url");
      expect(cell(key, "note").children).toHaveLength(0);
    }
    expect(cell("d", "note").querySelector(".rxnb-null")).not.toBeNull();
    show(errors([["a", "failed", "no executor has registered `m.f`"]], { columns: ["id", "status", "note"] }));
    expect(cell("a", "note").textContent).toBe("no executor has registered `m.f`");
    expect(cell("a", "note").children).toHaveLength(0);
  });

  it("details that arrive with a diff fold in", () => {
    show(errors([["a", "running", null, null]]));
    send(diff(1, { changed: [["a", "failed", "ValueError: bad url", trace]] }));
    expect(cell("a", "note").querySelector("details pre")!.textContent).toBe(trace);
  });

  it("store strings in the line and the details stay text", () => {
    const evil = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    show(errors([["a", "failed", evil, evil]]));
    expect(host.querySelectorAll("img, script")).toHaveLength(0);
    expect(cell("a", "note").firstChild!.textContent).toBe(evil);
    expect(cell("a", "note").querySelector("pre")!.textContent).toBe(evil);
  });
});

describe("hidden columns", () => {
  const headers = () => [...host.querySelectorAll("thead th")].map((th) => th.getAttribute("data-col"));

  it("are neither headers nor cells", () => {
    show(runsPayload([runRow("a", "failed")], { hidden: ["cancel_requested", "progress"] }));
    // No caller in these views: no actions column.
    expect(headers()).toEqual(["id", "status", "elapsed", "created_at"]);
    const cells = [...host.querySelectorAll("tr[data-key] td")].map((td) => td.getAttribute("data-col"));
    expect(cells).toEqual(["id", "status", "elapsed", "created_at"]);
    expect(host.querySelector('[data-col="cancel_requested"], [data-col="progress"]')).toBeNull();
  });

  it("are still read by formats and actions", () => {
    const rows = [runRow("a", "running", { cancel: true }), runRow("b", "failed")];
    const mounted = mountView(runsPayload(rows, { hidden: ["id", "cancel_requested"] }), {
      functions: ["cancel", "retry"],
    });
    const running = mounted.el.querySelector('tr[data-key=\'["a"]\']')!;
    expect(running.querySelector('[data-col="id"], [data-col="cancel_requested"]')).toBeNull();
    expect(running.querySelector('td[data-col="status"] .rxnb-badge')!.textContent).toBe("cancelling");
    mounted.el.querySelector<HTMLButtonElement>('tr[data-key=\'["b"]\'] button[data-action="retry"]')!.click();
    expect(sentCalls(mounted.model)).toEqual([
      { type: "call", id: expect.any(Number), fn: "retry", args: { run_id: "b" } },
    ]);
    mounted.view.dispose();
  });

  it("cannot be sorted by; a sort by a column that becomes hidden is dropped", () => {
    const rows = [runRow("b", "queued"), runRow("a", "failed")];
    const order = () => [...host.querySelectorAll("tbody tr")].map((tr) => tr.getAttribute("data-key"));
    show(runsPayload(rows));
    host.querySelector<HTMLButtonElement>('th[data-col="id"] button')!.click();
    expect(order()).toEqual(['["a"]', '["b"]']);
    send({ type: "full", payload: runsPayload(rows, { version: 2, hidden: ["id"] }) });
    expect(headers()).not.toContain("id");
    expect(order()).toEqual(['["b"]', '["a"]']);
    expect(host.querySelector("th[aria-sort]")).toBeNull();
  });

  it("a name that is no column changes nothing", () => {
    show(runsPayload([runRow("a", "failed")], { hidden: ["nope"] }));
    expect(headers()).toEqual(RUN_COLUMNS);
  });
});
