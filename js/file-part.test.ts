import { afterEach, describe, expect, it } from "vitest";
import { FileParts, fileIds, type FileReply } from "./file-part";
import { CHAT, CHAT_COLUMNS, chatPayload, mountView, sentCalls, tablePayload } from "./testing";

afterEach(() => {
  document.body.replaceChildren();
});

const PNG = "iVBORw0KGgo=";

function file(fields: Partial<FileReply>): FileReply {
  return { id: "f1", name: "a.png", content_type: "image/png", size: 8, data: PNG, ...fields };
}

function mounted(replies: Record<string, FileReply | string>, ids: string[]) {
  const asked: [string, boolean][] = [];
  const parts = new FileParts((id, download, done) => {
    asked.push([id, download]);
    done(replies[id] ?? "not found");
  });
  document.body.append(parts.el);
  parts.show(ids);
  return { parts, asked };
}

describe("file parts", () => {
  it("read ids from a cell: one id, a list, or JSON text of a list", () => {
    expect(fileIds("abc")).toEqual(["abc"]);
    expect(fileIds(["a", 1, "", "b"])).toEqual(["a", "b"]);
    expect(fileIds('["a","b"]')).toEqual(["a", "b"]);
    expect(fileIds(null)).toEqual([]);
    expect(fileIds("[broken")).toEqual([]);
  });

  it("show a raster image as an img from a data URL, anything else as a link", () => {
    const { parts } = mounted(
      { i: file({ id: "i" }), p: file({ id: "p", name: "r.pdf", content_type: "application/pdf", data: null }) },
      ["i", "p"],
    );
    const img = parts.el.querySelector<HTMLImageElement>("img.rxnb-file-image")!;
    expect(img.getAttribute("src")).toBe(`data:image/png;base64,${PNG}`);
    expect(img.alt).toBe("a.png");
    const link = parts.el.querySelector<HTMLAnchorElement>("a.rxnb-file-link")!;
    expect(link.textContent).toBe("r.pdf (8 B)");
    expect(parts.el.querySelectorAll("img")).toHaveLength(1);
  });

  it("keep hostile names and types inert: svg is a link, names are text", () => {
    const hostile = '<img src=x onerror="window.pwned=1">';
    const { parts } = mounted(
      {
        s: file({ id: "s", name: hostile, content_type: "image/svg+xml", data: btoa("<svg onload=alert(1)>") }),
        j: file({ id: "j", name: hostile, content_type: 'image/png" onerror="x', data: PNG }),
      },
      ["s", "j"],
    );
    expect(parts.el.querySelectorAll("img")).toHaveLength(0);
    const links = [...parts.el.querySelectorAll("a.rxnb-file-link")];
    expect(links.map((a) => a.textContent)).toEqual([`${hostile} (8 B)`, `${hostile} (8 B)`]);
    expect(parts.el.querySelector("[onerror]")).toBeNull();
  });

  it("fetch a link's bytes only when it is clicked, and show a failure as text", () => {
    const { parts, asked } = mounted(
      { p: file({ id: "p", name: "r.pdf", content_type: "application/pdf", data: null }) },
      ["p", "gone"],
    );
    expect(asked).toEqual([
      ["p", false],
      ["gone", false],
    ]);
    expect(parts.el.querySelector('[data-file-id="gone"] .rxnb-file-error')!.textContent).toBe("not found");
    parts.show(["p", "gone"]);
    expect(asked).toHaveLength(2); // the same ids: nothing fetched again
  });
});

describe("a chat with files", () => {
  it("asks the bound file call for each file its messages name", () => {
    const columns = [...CHAT_COLUMNS, "attachments"];
    const payload = chatPayload([[1, "user", "see this", "done", null, null, ["f1"]]], {
      columns,
      chat: { ...CHAT, files: { column: "attachments", fn: "file" } },
    });
    const { model, el } = mountView(payload, { functions: ["send", "cancel", "file"] });
    const [call] = sentCalls(model);
    expect(call).toMatchObject({ fn: "file", args: { id: "f1", download: false } });
    model.message({ type: "reply", id: call!.id, ok: true, result: { ...file({}) } });
    const img = el.querySelector<HTMLImageElement>('.rxnb-msg[data-key="[1]"] img.rxnb-file-image');
    expect(img?.getAttribute("src")).toBe(`data:image/png;base64,${PNG}`);
  });

  it("fetches nothing when the file call is not bound", () => {
    const payload = chatPayload([[1, "user", "x", "done", null, null, "f1"]], {
      columns: [...CHAT_COLUMNS, "attachments"],
      chat: { ...CHAT, files: { column: "attachments", fn: "file" } },
    });
    const { model, el } = mountView(payload);
    expect(sentCalls(model)).toHaveLength(0);
    expect(el.querySelector(".rxnb-files")).toBeNull();
  });
});

describe("an agent chat's tool card with files", () => {
  it("shows the files a tool returned under its card, even folded", () => {
    const columns = [...CHAT_COLUMNS, "tool_name", "arguments", "approval", "call_id", "files"];
    const row = [1, "tool", '{"file_id": "f1"}', "done", null, null, "chart", "{}", null, "call_1", '["f1","f2"]'];
    const payload = chatPayload([row], {
      columns,
      chat: {
        ...CHAT,
        tool: { name: "tool_name", arguments: "arguments", approval: "approval", call: "call_id" },
        files: { column: "files", fn: "file" },
      },
    });
    const { model, el } = mountView(payload, { functions: ["send", "cancel", "file"] });
    const calls = sentCalls(model);
    expect(calls.map((c) => c.args)).toEqual([
      { id: "f1", download: false },
      { id: "f2", download: false },
    ]);
    model.message({ type: "reply", id: calls[0]!.id, ok: true, result: { ...file({}) } });
    const svg = file({ id: "f2", name: '<img src=x onerror="alert(1)">.svg', content_type: "image/svg+xml", data: null });
    model.message({ type: "reply", id: calls[1]!.id, ok: true, result: { ...svg } });
    const card = el.querySelector<HTMLDetailsElement>(".rxnb-tool details.rxnb-tool-card")!;
    expect(card.open).toBe(false);
    const files = el.querySelector(".rxnb-tool > .rxnb-files")!;
    expect(card.nextElementSibling).toBe(files);
    expect(files.querySelector("img.rxnb-file-image")?.getAttribute("src")).toBe(`data:image/png;base64,${PNG}`);
    const link = files.querySelector<HTMLAnchorElement>('[data-file-id="f2"] a.rxnb-file-link')!;
    expect(link.textContent).toBe('<img src=x onerror="alert(1)">.svg (8 B)');
    expect(files.querySelectorAll("img")).toHaveLength(1); // the SVG is a link, its name text
  });
});

describe("a live table of files", () => {
  it("shows a `file` cell's image, fetched once however often the row is drawn", () => {
    const payload = tablePayload([["f1", "a.png"]], { columns: ["id", "name"], formats: { id: "file" } });
    const { model, el } = mountView(payload, { functions: ["file"] });
    const [call] = sentCalls(model);
    expect(call).toMatchObject({ fn: "file", args: { id: "f1", download: false } });
    model.message({ type: "reply", id: call!.id, ok: true, result: { ...file({}) } });
    expect(el.querySelector('td[data-col="id"] img.rxnb-file-image')).not.toBeNull();
    model.message({ type: "diff", base: 1, version: 2, changed: [["f1", "b.png"]] });
    expect(el.querySelector('td[data-col="name"]')!.textContent).toBe("b.png");
    expect(sentCalls(model)).toHaveLength(1);
    expect(el.querySelector('td[data-col="id"] img.rxnb-file-image')).not.toBeNull();
  });

  it("shows the id as text when the call is not bound", () => {
    const payload = tablePayload([["f1", "a.png"]], { columns: ["id", "name"], formats: { id: "file" } });
    const { model, el } = mountView(payload, { functions: [] });
    expect(sentCalls(model)).toHaveLength(0);
    expect(el.querySelector('td[data-col="id"]')!.textContent).toBe("f1");
  });
});
