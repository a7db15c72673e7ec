import { afterEach, describe, expect, it } from "vitest";
import { mountView, sentCalls, stepRow, timelinePayload } from "./testing";

const T = Date.now() / 1000;

const rows = [
  stepRow("r1", 0, "load", { start: T - 3, end: T - 2, preview: "3 rows" }),
  stepRow("r1", 1, "ask", { start: T - 2, end: T - 1, preview: "ok" }),
];

afterEach(() => document.body.replaceChildren());

describe("the timeline's Fork buttons (rule 5)", () => {
  it("are there only when the model binds fork", () => {
    const { el } = mountView(timelinePayload(rows), { functions: ["cancel"] });
    expect(el.querySelectorAll(".rxnb-tl-fork")).toHaveLength(0);
    expect(el.querySelector(".rxnb-timeline")!.hasAttribute("data-fork")).toBe(false);
  });

  it("call fork with the lane's run and step, disabled until the reply, which shows", () => {
    const { el, model } = mountView(timelinePayload(rows), { functions: ["fork"] });
    const buttons = [...el.querySelectorAll<HTMLButtonElement>(".rxnb-tl-fork")];
    expect(buttons.map((b) => b.textContent)).toEqual(["Fork", "Fork"]);
    expect(buttons[1]!.title).toContain("runs on from step 1");
    buttons[1]!.click();
    buttons[1]!.click(); // a second click while waiting sends nothing
    const calls = sentCalls(model);
    expect(calls.map((c) => [c.fn, c.args])).toEqual([["fork", { run_id: "r1", from_step: 1 }]]);
    expect(buttons[1]!.disabled).toBe(true);
    expect(buttons[0]!.disabled).toBe(false);
    model.message({ type: "reply", id: calls[0]!.id, ok: true, result: "f00d" });
    expect(buttons[1]!.disabled).toBe(false);
    const line = el.querySelector<HTMLElement>(".rxnb-tl-forked")!;
    expect(line.hidden).toBe(false);
    expect(line.textContent).toBe("forked run r1 from step 1: new run f00d");
  });

  it("show a failed fork's error as text, in an alert", () => {
    const { el, model } = mountView(timelinePayload(rows), { functions: ["fork"] });
    el.querySelector<HTMLButtonElement>(".rxnb-tl-fork")!.click();
    const [call] = sentCalls(model);
    const message = "<b>step 2</b> has not ended; fork from_step <= 2";
    model.message({ type: "reply", id: call!.id, ok: false, error: { type: "WorkflowError", message } });
    const line = el.querySelector<HTMLElement>(".rxnb-tl-forked")!;
    expect(line.getAttribute("role")).toBe("alert");
    expect(line.textContent).toBe(`WorkflowError: ${message}`);
    expect(line.querySelector("b")).toBeNull();
  });

  it("are disabled once the kernel side is gone", () => {
    const { el, view } = mountView(timelinePayload(rows), { functions: ["fork"] });
    view.setConnection("disconnected");
    const buttons = [...el.querySelectorAll<HTMLButtonElement>(".rxnb-tl-fork")];
    expect(buttons.every((b) => b.disabled)).toBe(true);
    buttons[0]!.click();
    expect(el.querySelector<HTMLElement>(".rxnb-tl-forked")!.hidden).toBe(true);
  });
});
