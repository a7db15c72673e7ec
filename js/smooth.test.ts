import { describe, expect, it, vi } from "vitest";
import { browserMotion, cut, FINISH_MS, FIRST_INTERVAL_MS, FrameLoop, Reveal } from "./smooth";
import { FakeMotion } from "./testing";

/** Step `reveal` every `frame` ms from `from` to `to`; the shown counts after each step. */
function frames(reveal: Reveal, from: number, to: number, frame = 16): number[] {
  const shown: number[] = [];
  for (let t = from + frame; t <= to; t += frame) {
    reveal.step(t);
    shown.push(reveal.shown);
  }
  return shown;
}

describe("Reveal", () => {
  it("shows the text held when first shown at once (rule 1)", () => {
    const reveal = new Reveal(500, 0);
    expect(reveal.shown).toBe(500);
    expect(reveal.done).toBe(true);
  });

  it("reveals text that arrives later a few characters per frame", () => {
    const reveal = new Reveal(10, 0);
    reveal.update(110, true, 0);
    expect(reveal.shown).toBe(10);
    const shown = frames(reveal, 0, FIRST_INTERVAL_MS + 16);
    // Steadily growing, never all at once, all out by about when the next text is due.
    expect(shown[0]).toBeGreaterThan(10);
    expect(shown[0]).toBeLessThan(30);
    for (let i = 1; i < shown.length; i++) expect(shown[i]).toBeGreaterThanOrEqual(shown[i - 1]!);
    expect(shown[shown.length - 1]).toBe(110);
    expect(reveal.done).toBe(true);
  });

  it("follows the incoming rate: the same text spread over the time between updates", () => {
    const quick = new Reveal(0, 0);
    const slow = new Reveal(0, 0);
    for (let i = 1; i <= 4; i++) {
      quick.update(40 * i, true, 50 * i);
      quick.step(50 * i);
      slow.update(40 * i, true, 400 * i);
      slow.step(400 * i);
    }
    // Both got 40 more characters at their last update; the slow one spreads them wider.
    quick.update(200, true, 250);
    slow.update(200, true, 2000);
    quick.step(250 + 32);
    slow.step(2000 + 32);
    expect(quick.shown - 160).toBeGreaterThan(slow.shown - 160);
    expect(frames(quick, 282, 250 + 64)).toContain(200);
    expect(frames(slow, 2032, 2000 + 300).at(-1)).toBeLessThan(200);
    expect(frames(slow, 2300, 2000 + 420).at(-1)).toBe(200);
  });

  it("turns bursts into a steady stream", () => {
    // 60 characters every 300 ms, arriving all at once each time.
    const reveal = new Reveal(0, 0);
    const perFrame: number[] = [];
    let last = 0;
    for (let t = 0; t <= 1800; t += 16) {
      if (t % 300 < 16) reveal.update(60 * (Math.floor(t / 300) + 1), true, t);
      reveal.step(t);
      perFrame.push(reveal.shown - last);
      last = reveal.shown;
    }
    // Once the rate is learned, no frame shows more than a few characters.
    expect(Math.max(...perFrame.slice(40))).toBeLessThanOrEqual(5);
  });

  it("shows the rest within FINISH_MS once the message is no longer live (rule 3)", () => {
    const reveal = new Reveal(0, 0);
    reveal.update(10, true, 0);
    reveal.step(1000);
    reveal.update(20_000, true, 1000); // a second apart: 20,000 characters over a second
    reveal.step(1016);
    reveal.update(20_000, false, 1016); // the status went to done
    const shown = frames(reveal, 1016, 1016 + FINISH_MS + 16); // the last frame is the first past the deadline
    expect(shown.at(-2)).toBeLessThan(20_000);
    expect(shown.at(-1)).toBe(20_000);
    // Faster than the learned rate would have been: 20 characters a millisecond.
    expect(shown[0]! - 340).toBeGreaterThan(20 * 16);
  });

  it("gives text arriving after the end its own FINISH_MS", () => {
    const reveal = new Reveal(5, 0);
    reveal.update(5, false, 0); // done, nothing to reveal: no deadline
    reveal.update(905, false, 5000);
    reveal.step(5016);
    expect(reveal.shown).toBeLessThan(905);
    expect(frames(reveal, 5016, 5000 + FINISH_MS).at(-1)).toBe(905);
  });

  it("does not count idle time as reveal time", () => {
    const reveal = new Reveal(0, 0);
    reveal.update(100, true, 10_000); // first text after a long wait
    reveal.step(10_016);
    expect(reveal.shown).toBeLessThan(20);
  });

  it("skip shows everything (rule 4)", () => {
    const reveal = new Reveal(0, 0);
    reveal.update(300, true, 0);
    reveal.skip();
    expect(reveal.shown).toBe(300);
    expect(reveal.done).toBe(true);
  });
});

describe("cut", () => {
  it("never splits a surrogate pair", () => {
    const text = "a😀b";
    expect(cut(text, 1)).toBe("a");
    expect(cut(text, 2)).toBe("a😀");
    expect(cut(text, 3)).toBe("a😀");
    expect(cut(text, 9)).toBe(text);
    expect(cut(text, 0)).toBe("");
  });
});

describe("FrameLoop", () => {
  it("requests one frame at a time, while the callback wants more", () => {
    const motion = new FakeMotion();
    let left = 3;
    const seen: number[] = [];
    const loop = new FrameLoop(motion, (now) => {
      seen.push(now);
      return --left > 0;
    });
    loop.wake();
    loop.wake();
    expect(motion.pending).toBe(1);
    motion.run(1000);
    expect(seen).toEqual([1016, 1032, 1048]);
    expect(loop.running).toBe(false);
    expect(motion.pending).toBe(0);
  });

  it("stop cancels the frame requested, for good", () => {
    const motion = new FakeMotion();
    const onFrame = vi.fn(() => true);
    const loop = new FrameLoop(motion, onFrame);
    loop.wake();
    loop.stop();
    expect(motion.pending).toBe(0);
    loop.wake();
    motion.run(100);
    expect(onFrame).not.toHaveBeenCalled();
  });
});

describe("browserMotion", () => {
  it("reads no preference where there is no matchMedia, and the query where there is", () => {
    expect(browserMotion(window).reduced()).toBe(false);
    const matches = { matches: true };
    const fake = Object.create(window) as Window;
    Object.defineProperty(fake, "matchMedia", { value: vi.fn(() => matches) });
    const motion = browserMotion(fake);
    expect(motion.reduced()).toBe(true);
    matches.matches = false; // the reader changed it: read on every call
    expect(motion.reduced()).toBe(false);
    expect(fake.matchMedia).toHaveBeenCalledTimes(1);
    expect(fake.matchMedia).toHaveBeenCalledWith("(prefers-reduced-motion: reduce)");
  });
});
