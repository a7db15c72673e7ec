import { describe, expect, it } from "vitest";
import { applyMessage, keyString, normalizePayload, parseReply, rowKey, type Outcome, type Payload } from "./protocol";
import { CHAT, CHAT_COLUMNS, chatPayload, diff, tablePayload } from "./testing";

function applied(outcome: Outcome): Payload {
  if (outcome.status !== "applied") throw new Error(`expected applied, got ${JSON.stringify(outcome)}`);
  return outcome.payload;
}

const markdown = (text: string, version = 3): Payload => ({
  ...tablePayload([]),
  kind: "markdown",
  key: null,
  text,
  version,
});

describe("key strings", () => {
  it.each([
    { name: "int key", key: [0], row: [7, "a"], keyvals: [7], expected: "[7]" },
    { name: "string key", key: [1], row: [7, "t1"], keyvals: ["t1"], expected: '["t1"]' },
    { name: "composite key", key: [1, 0], row: [7, "t1", "x"], keyvals: ["t1", 7], expected: '["t1",7]' },
    { name: "string that looks like an int", key: [0], row: ["7"], keyvals: ["7"], expected: '["7"]' },
    { name: "quotes and commas", key: [0], row: ['a","b'], keyvals: ['a","b'], expected: '["a\\",\\"b"]' },
  ])("$name", ({ key, row, keyvals, expected }) => {
    expect(rowKey(key, row)).toBe(expected);
    expect(keyString(keyvals)).toBe(expected);
  });

  it("tells an int key from the same digits as a string", () => {
    expect(rowKey([0], [7])).not.toBe(rowKey([0], ["7"]));
  });
});

describe("normalizePayload", () => {
  it("fills what is missing or mistyped", () => {
    const payload = normalizePayload({ version: 4, kind: "bogus", rows: [[1], "x"], key: "id" });
    expect(payload).toMatchObject({
      version: 4,
      kind: "value",
      rows: [[1]],
      key: null,
      error: null,
      title: "",
    });
  });

  it("keeps a well-formed payload as it is", () => {
    const payload = tablePayload([[1, "user", "hi"]], { error: { type: "ValueError", message: "bad" } });
    expect(normalizePayload(payload)).toEqual(payload);
  });

  it("has no actions or formats unless the kernel sent them", () => {
    const payload = normalizePayload(tablePayload([[1, "user", "hi"]]));
    expect("actions" in payload || "formats" in payload).toBe(false);
  });

  it("keeps well-formed actions, with defaults, and drops the rest", () => {
    const payload = normalizePayload({
      ...tablePayload([]),
      actions: [
        { name: "cancel", column: "id" },
        { name: "retry", label: "Retry", column: "id", arg: "run_id", when: { column: "status", in: ["failed"] } },
        { name: "bad-when", column: "id", when: { column: "status", in: "failed" } },
        { label: "no name", column: "id" },
        "cancel",
      ],
    });
    expect(payload.actions).toEqual([
      { name: "cancel", label: "cancel", column: "id", arg: "id", when: null },
      { name: "retry", label: "Retry", column: "id", arg: "run_id", when: { column: "status", in: ["failed"] } },
    ]);
  });

  it("keeps the hidden column names, strings only; none unless the kernel sent them", () => {
    expect("hidden" in normalizePayload(tablePayload([]))).toBe(false);
    const payload = normalizePayload({ ...tablePayload([]), hidden: ["details", 3, null, "x"] });
    expect(payload.hidden).toEqual(["details", "x"]);
    expect("hidden" in normalizePayload({ ...tablePayload([]), hidden: "details" })).toBe(false);
  });

  it("keeps known formats only, by column name", () => {
    const formats: unknown = JSON.parse('{"status": "status", "at": "time", "x": "html", "__proto__": "json", "y": 3}');
    const payload = normalizePayload({ ...tablePayload([]), formats });
    expect(Object.keys(payload.formats!).sort()).toEqual(["__proto__", "at", "status"]);
    expect(payload.formats!["at"]).toBe("time");
    // A column named __proto__ is a key like any other, not the object's prototype.
    expect(payload.formats!["__proto__"]).toBe("json");
    expect(Object.getPrototypeOf(payload.formats)).toBe(Object.prototype);
  });
});

describe("parseReply", () => {
  it("reads ok and failed replies, and nothing else", () => {
    expect(parseReply({ type: "reply", id: 3, ok: true, result: "cancelled" })).toEqual({
      id: 3,
      ok: true,
      result: "cancelled",
    });
    expect(parseReply({ type: "reply", id: 4, ok: false, error: { type: "E", message: "m" } })).toEqual({
      id: 4,
      ok: false,
      error: { type: "E", message: "m" },
    });
    expect(parseReply({ type: "reply", id: 5, ok: false })).toEqual({
      id: 5,
      ok: false,
      error: { type: "Error", message: "" },
    });
    expect(parseReply({ type: "reply", ok: true })).toBeNull();
    expect(parseReply({ type: "full", payload: {} })).toBeNull();
  });
});

describe("full", () => {
  it("replaces everything, even with a lower version", () => {
    const held = tablePayload([[1, "user", "hi"]], { version: 9 });
    const next = applied(applyMessage(held, { type: "full", payload: markdown("hello", 2) }));
    expect(next.kind).toBe("markdown");
    expect(next.version).toBe(2);
    expect(next.text).toBe("hello");
  });
});

describe("diff", () => {
  const a = [1, "user", "a"];
  const b = [2, "assistant", "b"];
  const c = [3, "user", "c"];

  it("drops removed rows by key values", () => {
    const next = applied(applyMessage(tablePayload([a, b, c]), diff(1, { removed: [[2]] })));
    expect(next.rows).toEqual([a, c]);
    expect(next.version).toBe(2);
  });

  it("replaces changed rows in place", () => {
    const b2 = [2, "assistant", "b, longer"];
    const next = applied(applyMessage(tablePayload([a, b, c]), diff(1, { changed: [b2] })));
    expect(next.rows).toEqual([a, b2, c]);
  });

  it("inserts in ascending index order, whatever order they were sent in", () => {
    const d = [4, "user", "d"];
    const e = [5, "user", "e"];
    // Ascending: e at 1 gives [a, e, b, c], then d at 3 gives [a, e, b, d, c].
    // In the order sent it would be [a, e, b, c, d].
    const next = applied(
      applyMessage(
        tablePayload([a, b, c]),
        diff(1, {
          inserted: [
            [3, d],
            [1, e],
          ],
        }),
      ),
    );
    expect(next.rows).toEqual([a, e, b, d, c]);
  });

  it("applies removed, then changed, then inserted, with indexes of the new list", () => {
    const c2 = [3, "user", "c2"];
    const x = [9, "user", "x"];
    const y = [8, "user", "y"];
    const next = applied(
      applyMessage(
        tablePayload([a, b, c]),
        diff(1, {
          removed: [[1]],
          changed: [c2],
          inserted: [
            [0, x],
            [3, y],
          ],
        }),
      ),
    );
    // After removal: [b, c]; after change: [b, c2]; x at 0: [x, b, c2]; y at 3: [x, b, c2, y].
    expect(next.rows).toEqual([x, b, c2, y]);
  });

  it("finds rows by composite and string keys", () => {
    const held = tablePayload(
      [
        ["t1", 1, "a"],
        ["t1", 2, "b"],
        ["t2", 1, "c"],
      ],
      { key: [0, 1], columns: ["thread", "n", "content"] },
    );
    const next = applied(applyMessage(held, diff(1, { removed: [["t1", 2]], changed: [["t2", 1, "c2"]] })));
    expect(next.rows).toEqual([
      ["t1", 1, "a"],
      ["t2", 1, "c2"],
    ]);
  });

  it("keeps the identity of untouched rows and leaves the held payload alone", () => {
    const held = tablePayload([a, b, c]);
    const next = applied(applyMessage(held, diff(1, { changed: [[2, "assistant", "b2"]] })));
    expect(next.rows[0]).toBe(a);
    expect(next.rows[2]).toBe(c);
    expect(held.rows).toEqual([a, b, c]);
    expect(held.version).toBe(1);
  });

  it.each([
    { name: "base below the version held", message: { ...(diff(1, {}) as object), base: 0, version: 1 } },
    { name: "version not above the version held", message: { ...(diff(1, {}) as object), version: 1 } },
  ])("is stale with $name", ({ message }) => {
    expect(applyMessage(tablePayload([a], { version: 1 }), message).status).toBe("stale");
  });

  it("is a gap when its base is ahead of the version held", () => {
    expect(applyMessage(tablePayload([a], { version: 1 }), diff(2, { removed: [[1]] })).status).toBe("gap");
  });

  it.each([
    { name: "a removed key not held", parts: { removed: [[42]] } },
    { name: "a changed key not held", parts: { changed: [[42, "user", "?"]] } },
    {
      name: "an insert index past the end",
      parts: { inserted: [[5, [9, "user", "x"]]] as [number, never][] },
    },
  ])("is a gap with $name", ({ parts }) => {
    expect(applyMessage(tablePayload([a, b]), diff(1, parts)).status).toBe("gap");
  });

  it("is a gap on a keyless table or a markdown payload", () => {
    expect(applyMessage(tablePayload([a], { key: null }), diff(1, {})).status).toBe("gap");
    expect(applyMessage(markdown("x", 1), diff(1, {})).status).toBe("gap");
  });
});

describe("diff: appended", () => {
  const a = [1, "user", "hi", "done"];
  const b = [2, "assistant", "Hel", "streaming"];
  const c = [3, "user", "yo", null];
  const held = () => tablePayload([a, b, c], { columns: ["id", "role", "content", "status"] });

  it("adds the text to the cell, and keeps every other row array", () => {
    const before = held();
    const next = applied(applyMessage(before, diff(1, { appended: [[[2], 2, "lo"]] })));
    expect(next.rows).toEqual([a, [2, "assistant", "Hello", "streaming"], c]);
    expect(next.version).toBe(2);
    expect(next.rows[0]).toBe(a);
    expect(next.rows[2]).toBe(c);
    // The held payload and its row are left as they were.
    expect(before.rows[1]).toBe(b);
    expect(b).toEqual([2, "assistant", "Hel", "streaming"]);
  });

  it("applies several entries, to one row's cells or one cell, in the order sent", () => {
    const next = applied(
      applyMessage(
        held(),
        diff(1, {
          appended: [
            [[2], 2, "l"],
            [[2], 3, "!"],
            [[2], 2, "o"],
            [[1], 2, "!"],
          ],
        }),
      ),
    );
    expect(next.rows).toEqual([[1, "user", "hi!", "done"], [2, "assistant", "Hello", "streaming!"], c]);
  });

  it("applies after removed and changed, before inserted", () => {
    const x = [9, "user", "new", "done"];
    const next = applied(
      applyMessage(
        held(),
        diff(1, {
          removed: [[1]],
          changed: [[3, "user", "yo2", "done"]],
          appended: [[[3], 2, "+"]], // the changed row, as changed by this diff
          inserted: [[0, x]],
        }),
      ),
    );
    expect(next.rows).toEqual([x, b, [3, "user", "yo2+", "done"]]);
  });

  it("sets `cells` after the appended text, in the same row copy", () => {
    const before = held();
    const next = applied(
      applyMessage(before, diff(1, { appended: [[[2], 2, "lo"]], cells: [[[2], 3, "done"], [[3], 3, 7]] })),
    );
    expect(next.rows).toEqual([a, [2, "assistant", "Hello", "done"], [3, "user", "yo", 7]]);
    expect(next.rows[0]).toBe(a);
    expect(before.rows[1]).toBe(b);
    expect(b).toEqual([2, "assistant", "Hel", "streaming"]);
  });

  it.each([
    { name: "a row not held", entry: [[42], 3, "x"] },
    { name: "a column index past the row", entry: [[2], 4, "x"] },
    { name: "a malformed entry", entry: [[2], 3] },
  ])("cells: $name is a gap", ({ entry }) => {
    expect(applyMessage(held(), diff(1, { cells: [entry] })).status).toBe("gap");
  });

  it("finds the row by composite and string keys", () => {
    const rows = [
      ["t1", 1, "a"],
      ["t1", 2, "b"],
    ];
    const payload = tablePayload(rows, { key: [0, 1], columns: ["thread", "n", "content"] });
    const next = applied(applyMessage(payload, diff(1, { appended: [[["t1", 2], 2, "c"]] })));
    expect(next.rows).toEqual([["t1", 1, "a"], ["t1", 2, "bc"]]);
    expect(next.rows[0]).toBe(rows[0]);
  });

  it.each([
    { name: "a row not held", entry: [[42], 2, "x"] },
    { name: "a row this diff removed", entry: [[2], 2, "x"], removed: [[2]] },
    { name: "a row this diff inserts (inserted comes after)", entry: [[9], 2, "x"], inserted: true },
    { name: "a column index past the row", entry: [[2], 4, "x"] },
    { name: "a negative column index", entry: [[2], -1, "x"] },
    { name: "a fractional column index", entry: [[2], 1.5, "x"] },
    { name: "a column index as a string", entry: [[2], "2", "x"] },
    { name: "a number cell", entry: [[2], 0, "x"] },
    { name: "a null cell", entry: [[3], 3, "x"] },
    { name: "text that is not a string", entry: [[2], 2, 5] },
    { name: "key values that are not a list", entry: [2, 2, "x"] },
    { name: "an entry of two", entry: [[2], 2] },
  ])("is a gap with $name", ({ entry, removed, inserted }) => {
    const message = {
      ...(diff(1, { removed: removed ?? [], inserted: inserted ? [[3, [9, "user", "", "done"]]] : [] }) as object),
      appended: [entry],
    };
    const before = held();
    expect(applyMessage(before, message).status).toBe("gap");
    expect(before.rows[1]).toEqual([2, "assistant", "Hel", "streaming"]);
  });

  it("is a gap when it is not a list, and nothing when it is empty", () => {
    expect(applyMessage(held(), { ...(diff(1, {}) as object), appended: { 2: "x" } }).status).toBe("gap");
    expect(applied(applyMessage(held(), diff(1, { appended: [] }))).rows).toEqual([a, b, c]);
  });
});

describe("normalizePayload: chat", () => {
  it("keeps a well-formed chat field as it is", () => {
    const payload = chatPayload([[1, "user", "hi", "done", null, null]]);
    expect(normalizePayload(payload)).toEqual(payload);
    expect(normalizePayload(payload).chat).toEqual(CHAT);
  });

  it("reads missing or mistyped optional parts as none, with defaults", () => {
    const payload = normalizePayload({
      ...tablePayload([]),
      chat: { text: "content", role: 3, status: null, send: { fn: "send" }, cancel: null },
    });
    expect(payload.chat).toEqual({
      text: "content",
      role: null,
      status: null,
      usage: null,
      error: null,
      detail: null,
      note: null,
      send: { fn: "send", args: {}, text_arg: "text" },
      cancel: null,
      placeholder: "Message",
    });
  });

  it("reads the detail and note columns, a mistyped one as none", () => {
    const chat = (extra: object) => normalizePayload({ ...tablePayload([]), chat: { ...CHAT, ...extra } }).chat!;
    expect(chat({ detail: "rx_detail", note: "rx_note" })).toMatchObject({ detail: "rx_detail", note: "rx_note" });
    expect(chat({ detail: 1, note: ["rx_note"] })).toMatchObject({ detail: null, note: null });
  });

  it.each([
    { name: "send without fn", chat: { ...CHAT, send: { args: {}, text_arg: "text" } }, part: "send" },
    { name: "send with args a list", chat: { ...CHAT, send: { fn: "send", args: [1] } }, part: "send" },
    { name: "send with text_arg a number", chat: { ...CHAT, send: { fn: "send", text_arg: 1 } }, part: "send" },
    { name: "send a string", chat: { ...CHAT, send: "send" }, part: "send" },
    { name: "cancel without arg", chat: { ...CHAT, cancel: { fn: "cancel" } }, part: "cancel" },
  ])("a malformed part is null: $name", ({ chat, part }) => {
    const payload = normalizePayload({ ...tablePayload([]), columns: CHAT_COLUMNS, chat });
    expect(payload.chat?.[part as "send" | "cancel"]).toBeNull();
    expect(payload.chat?.text).toBe("content");
  });

  it.each([
    { name: "not an object", chat: "content" },
    { name: "without text", chat: { ...CHAT, text: undefined } },
    { name: "text not a string", chat: { ...CHAT, text: 2 } },
    { name: "null", chat: null },
  ])("a malformed chat field is absent: $name", ({ chat }) => {
    const payload = normalizePayload({ ...tablePayload([]), chat });
    expect("chat" in payload).toBe(false);
  });

  it("is absent from a payload that is not a table", () => {
    const payload = normalizePayload({ ...tablePayload([]), kind: "markdown", chat: CHAT });
    expect("chat" in payload).toBe(false);
  });
});

describe("append", () => {
  it("appends text and takes the message's version", () => {
    const next = applied(
      applyMessage(markdown("Hel", 3), { type: "append", base: 3, version: 4, text: "lo" }),
    );
    expect(next.text).toBe("Hello");
    expect(next.version).toBe(4);
  });

  it("follows the version rules", () => {
    expect(applyMessage(markdown("x", 3), { type: "append", base: 2, version: 3, text: "y" }).status).toBe(
      "stale",
    );
    expect(applyMessage(markdown("x", 3), { type: "append", base: 4, version: 5, text: "y" }).status).toBe(
      "gap",
    );
  });

  it("is a gap on a table", () => {
    expect(applyMessage(tablePayload([]), { type: "append", base: 1, version: 2, text: "y" }).status).toBe(
      "gap",
    );
  });
});

it("ignores replies and unknown messages", () => {
  const held = tablePayload([]);
  expect(applyMessage(held, { type: "reply", id: 1, ok: true, result: 2 }).status).toBe("ignored");
  expect(applyMessage(held, { type: "diff" }).status).toBe("ignored");
  expect(applyMessage(held, "full").status).toBe("ignored");
});
