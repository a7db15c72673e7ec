import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyMessage, type Json, type Payload, type Row } from "./protocol";
import { MAX_ROWS, TableView } from "./table";
import { diff, rowsBetween, tablePayload } from "./testing";

let host: HTMLElement;
let table: TableView;
let payload: Payload;

beforeEach(() => {
  host = document.body.appendChild(document.createElement("div"));
  table = new TableView(host);
});

afterEach(() => {
  document.body.replaceChildren();
});

function show(next: Payload): void {
  payload = next;
  table.update(payload);
}

/** Apply a kernel message as the widget would, and show the result. */
function send(message: unknown): void {
  const outcome = applyMessage(payload, message);
  if (outcome.status !== "applied") throw new Error(`not applied: ${outcome.status}`);
  show(outcome.payload);
}

function trs(): HTMLTableRowElement[] {
  return [...host.querySelectorAll<HTMLTableRowElement>("tbody tr")];
}

function keys(): (string | null)[] {
  return trs().map((tr) => tr.getAttribute("data-key"));
}

function column(name: string): (string | null)[] {
  return trs().map((tr) => tr.querySelector(`td[data-col="${name}"]`)!.textContent);
}

function th(name: string): HTMLTableCellElement {
  return host.querySelector<HTMLTableCellElement>(`th[data-col="${name}"]`)!;
}

function clickHeader(name: string): void {
  th(name).querySelector("button")!.click();
}

function sortAttributes(): Record<string, string | null> {
  const names = [...host.querySelectorAll("th")].map((cell) => cell.getAttribute("data-col")!);
  return Object.fromEntries(names.map((name) => [name, th(name).getAttribute("aria-sort")]));
}

describe("patching", () => {
  it("a diff replaces, removes and inserts only the affected <tr>s", () => {
    show(tablePayload(rowsBetween(1, 6))); // keys 1..5
    const before = new Map(trs().map((tr) => [tr.getAttribute("data-key"), tr]));
    const untouchedCell = before.get("[4]")!.cells[2]!;
    const observer = new MutationObserver(() => {});
    observer.observe(host.querySelector("tbody")!, { childList: true, subtree: true, characterData: true });

    send(diff(1, { removed: [[2]], changed: [[3, "user", "edited"]], inserted: [[0, [9, "user", "new"]]] }));

    // The DOM saw exactly: [2] and the old [3] leave, [9] and the new [3] come in.
    const records = observer.takeRecords();
    observer.disconnect();
    const moved = (list: "addedNodes" | "removedNodes") =>
      records.flatMap((r) => [...r[list]]).map((node) => (node as Element).getAttribute("data-key"));
    expect(moved("removedNodes").sort()).toEqual(["[2]", "[3]"]);
    expect(moved("addedNodes").sort()).toEqual(["[3]", "[9]"]);

    expect(keys()).toEqual(["[9]", "[1]", "[3]", "[4]", "[5]"]);
    const after = new Map(trs().map((tr) => [tr.getAttribute("data-key"), tr]));
    for (const key of ["[1]", "[4]", "[5]"]) expect(after.get(key)).toBe(before.get(key));
    expect(after.get("[4]")!.cells[2]).toBe(untouchedCell);
    expect(after.get("[3]")).not.toBe(before.get("[3]"));
    expect(after.get("[3]")!.querySelector('td[data-col="content"]')!.textContent).toBe("edited");
    expect(before.get("[2]")!.isConnected).toBe(false);
  });

  it("a full with the same rows keeps every <tr>", () => {
    show(tablePayload(rowsBetween(1, 4)));
    const before = trs();
    show(tablePayload(rowsBetween(1, 4), { version: 8 }));
    expect(trs()).toEqual(before);
    trs().forEach((tr, i) => expect(tr).toBe(before[i]));
  });

  it("new columns rebuild the header and the rows", () => {
    show(tablePayload(rowsBetween(1, 3)));
    const before = trs();
    show(tablePayload([[1, "a"]], { columns: ["id", "name"] }));
    expect([...host.querySelectorAll("th")].map((cell) => cell.textContent)).toEqual(["id", "name"]);
    expect(trs()[0]).not.toBe(before[0]);
    expect(column("name")).toEqual(["a"]);
  });
});

describe("sorting", () => {
  const rows: Row[] = [
    [1, "b", 10],
    [2, null, 9.25],
    [3, "a", 100],
    [4, "c", null],
    [5, "a", 9.5],
  ];

  beforeEach(() => {
    show(tablePayload(rows, { columns: ["id", "name", "score"] }));
  });

  it("cycles ascending, descending, original order, with aria-sort", () => {
    clickHeader("score");
    // Numerically: as text, "10" < "9" and (numeric collation) "9.5" < "9.25".
    expect(column("score")).toEqual(["9.25", "9.5", "10", "100", "—"]);
    expect(sortAttributes()).toEqual({ id: null, name: null, score: "ascending" });

    clickHeader("score");
    expect(column("score")).toEqual(["100", "10", "9.5", "9.25", "—"]); // null stays last
    expect(sortAttributes()).toEqual({ id: null, name: null, score: "descending" });

    clickHeader("score");
    expect(column("id")).toEqual(["1", "2", "3", "4", "5"]);
    expect(sortAttributes()).toEqual({ id: null, name: null, score: null });
  });

  it("sorts text with nulls last and ties in original order", () => {
    clickHeader("name");
    expect(column("id")).toEqual(["3", "5", "1", "4", "2"]);
    clickHeader("name");
    expect(column("id")).toEqual(["4", "1", "3", "5", "2"]);
  });

  it("another column starts ascending again", () => {
    clickHeader("score");
    clickHeader("score");
    clickHeader("id");
    expect(sortAttributes()).toEqual({ id: "ascending", name: null, score: null });
    expect(column("id")).toEqual(["1", "2", "3", "4", "5"]);
  });

  it("survives updates: new and changed rows land in sorted place", () => {
    clickHeader("score");
    clickHeader("score"); // descending
    send(diff(1, { changed: [[2, null, 1000]], inserted: [[0, [6, "z", 50]]] }));
    expect(column("id")).toEqual(["2", "3", "6", "1", "5", "4"]);
    expect(th("score").getAttribute("aria-sort")).toBe("descending");
  });
});

describe("the row cap", () => {
  const note = () => host.querySelector<HTMLElement>(".rxnb-more")!;

  it(`shows at most ${MAX_ROWS} rows and counts the rest, as rows come and go`, () => {
    show(tablePayload(rowsBetween(0, MAX_ROWS + 5)));
    expect(trs()).toHaveLength(MAX_ROWS);
    expect(note().hidden).toBe(false);
    expect(note().textContent).toBe("… 5 more rows");

    send(diff(1, { removed: [[0], [1], [2], [3]] }));
    expect(trs()).toHaveLength(MAX_ROWS);
    expect(keys()[0]).toBe("[4]");
    expect(note().textContent).toBe("… 1 more row");

    send(diff(2, { removed: [[4]] }));
    expect(trs()).toHaveLength(MAX_ROWS);
    expect(note().hidden).toBe(true);

    send(diff(3, { removed: [[5]] }));
    expect(trs()).toHaveLength(MAX_ROWS - 1);

    const extra: [number, Json[]][] = [
      [0, [-1, "user", "x"]],
      [1, [-2, "user", "y"]],
    ];
    send(diff(4, { inserted: extra }));
    expect(trs()).toHaveLength(MAX_ROWS);
    expect(keys().slice(0, 2)).toEqual(["[-1]", "[-2]"]);
    expect(note().textContent).toBe("… 1 more row");
  });

  it("caps the sorted order, not the original one", () => {
    show(tablePayload(rowsBetween(0, MAX_ROWS + 2)));
    clickHeader("id");
    clickHeader("id"); // descending: the two rows past the cap come first
    expect(keys().slice(0, 2)).toEqual([`[${MAX_ROWS + 1}]`, `[${MAX_ROWS}]`]);
    expect(trs()).toHaveLength(MAX_ROWS);
    expect(note().textContent).toBe("… 2 more rows");
  });
});
