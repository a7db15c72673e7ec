import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RESYNC_RETRY_MAX_MS, RESYNC_RETRY_MS, LiveState, type SyncStatus } from "./state";
import { diff, tablePayload } from "./testing";

const a = [1, "user", "a"];
const b = [2, "assistant", "b"];

/** A state holding version 1, and what it sent to the kernel. */
function held() {
  const sent: unknown[] = [];
  const state = new LiveState(tablePayload([a]), (content) => sent.push(content));
  const syncs: SyncStatus[] = [];
  state.subscribe((_payload, sync) => syncs.push(sync));
  return { state, sent, syncs };
}

const resyncs = (sent: unknown[]): number => sent.filter((m) => (m as { type: string }).type === "resync").length;

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("a resync that gets no full", () => {
  it("is asked again, each wait twice the last, until a full comes", () => {
    const { state, sent } = held();
    state.receive(diff(5, {})); // base 5, held 1: a gap
    expect(resyncs(sent)).toBe(1);
    vi.advanceTimersByTime(RESYNC_RETRY_MS - 1);
    expect(resyncs(sent)).toBe(1);
    vi.advanceTimersByTime(1);
    expect(resyncs(sent)).toBe(2); // the first was lost: asked again
    vi.advanceTimersByTime(2 * RESYNC_RETRY_MS - 1);
    expect(resyncs(sent)).toBe(2);
    vi.advanceTimersByTime(1);
    expect(resyncs(sent)).toBe(3);

    state.receive({ type: "full", payload: tablePayload([a, b], { version: 9 }) });
    expect(state.sync).toBe("live");
    expect(state.payload.version).toBe(9);
    vi.advanceTimersByTime(10 * RESYNC_RETRY_MAX_MS);
    expect(resyncs(sent)).toBe(3);
  });

  it("is asked again at most every RESYNC_RETRY_MAX_MS", () => {
    const { state, sent } = held();
    state.receive(diff(5, {}));
    let waited = 0;
    let wait = RESYNC_RETRY_MS;
    const asks = [0];
    while (waited + wait <= 10 * RESYNC_RETRY_MAX_MS) {
      waited += wait;
      asks.push(waited);
      wait = Math.min(wait * 2, RESYNC_RETRY_MAX_MS);
    }
    vi.advanceTimersByTime(10 * RESYNC_RETRY_MAX_MS);
    expect(resyncs(sent)).toBe(asks.length);
    expect(asks.at(-1)! - asks.at(-2)!).toBe(RESYNC_RETRY_MAX_MS);
  });

  it("a later gap starts again from the shortest wait", () => {
    const { state, sent } = held();
    state.receive(diff(5, {}));
    vi.advanceTimersByTime(RESYNC_RETRY_MS + 2 * RESYNC_RETRY_MS); // asked 3 times
    state.receive({ type: "full", payload: tablePayload([a], { version: 9 }) });
    state.receive(diff(20, {}));
    expect(resyncs(sent)).toBe(4);
    vi.advanceTimersByTime(RESYNC_RETRY_MS);
    expect(resyncs(sent)).toBe(5);
  });

  it("stops being asked when the payload trait changes, or the state is disposed", () => {
    const first = held();
    first.state.receive(diff(5, {}));
    first.state.replace(tablePayload([b], { version: 12 }));
    expect(first.state.sync).toBe("live");
    vi.advanceTimersByTime(10 * RESYNC_RETRY_MAX_MS);
    expect(resyncs(first.sent)).toBe(1);

    const second = held();
    second.state.receive(diff(5, {}));
    second.state.dispose();
    vi.advanceTimersByTime(10 * RESYNC_RETRY_MAX_MS);
    expect(resyncs(second.sent)).toBe(1);
  });

  it("stops being asked, quietly, once sending fails (the kernel is gone)", () => {
    let fail = false;
    const sent: unknown[] = [];
    const state = new LiveState(tablePayload([a]), (content) => {
      if (fail) throw new Error("Cannot send");
      sent.push(content);
    });
    state.receive(diff(5, {}));
    fail = true;
    expect(() => vi.advanceTimersByTime(10 * RESYNC_RETRY_MAX_MS)).not.toThrow();
    expect(vi.getTimerCount()).toBe(0);
    expect(resyncs(sent)).toBe(1);
    expect(state.sync).toBe("resyncing");
  });

  it("shows as resyncing once, while updates wait for the full", () => {
    const { state, syncs } = held();
    state.receive(diff(5, {}));
    vi.advanceTimersByTime(3 * RESYNC_RETRY_MS);
    state.receive(diff(1, { inserted: [[1, b]] })); // would apply, but the full is awaited
    expect(state.payload.rows).toEqual([a]);
    expect(syncs).toEqual(["resyncing"]);
  });
});
