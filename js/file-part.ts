/**
 * Stored files shown in a message (the chat field's `files`: a column naming each
 * message's files, and the bound call that fetches one).
 *
 * Rules, for whatever the store holds:
 * 1. An image whose content type is png, jpeg, gif or webp (never svg, which can carry
 *    script) shows as `img.rxnb-file-image`, from a `data:` URL of the bytes the kernel
 *    sent, its type taken from this list, not from the reply.
 * 2. Anything else is `a.rxnb-file-link`, its name and size as text. Its bytes are
 *    fetched when it is clicked and saved as a download of type
 *    `application/octet-stream` (a blob URL): the page never opens them.
 * 3. Names and types are text only; a file the kernel cannot send shows its error as
 *    text in `.rxnb-file-error`.
 */
import type { Caller } from "./calls";
import type { Json } from "./protocol";

/** The types shown as images (rule 1), by the content type the kernel reports. */
export const IMAGE_TYPES: ReadonlySet<string> = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/** What the kernel answers for one file. */
export interface FileReply {
  id: string;
  name: string;
  content_type: string;
  size: number;
  data: string | null;
}

/** Fetch one file; `done` gets the reply's result, or an error message. */
export type FileLoader = (id: string, download: boolean, done: (result: FileReply | string) => void) => void;

/** The file ids a cell names: an id, a list of ids, or JSON text of a list. */
export function fileIds(value: Json | undefined): string[] {
  let cell = value;
  if (typeof cell === "string") {
    const text = cell.trim();
    if (!text.startsWith("[")) return text === "" ? [] : [text];
    try {
      cell = JSON.parse(text) as Json;
    } catch {
      return [];
    }
  }
  if (!Array.isArray(cell)) return [];
  return cell.filter((id): id is string => typeof id === "string" && id !== "");
}

/** A reply's result as a `FileReply`, or null if it is not one. */
export function parseFileReply(result: Json): FileReply | null {
  if (typeof result !== "object" || result === null || Array.isArray(result)) return null;
  const { id, name, content_type: type, size, data } = result;
  if (typeof id !== "string" || typeof name !== "string" || typeof type !== "string") return null;
  if (typeof size !== "number" || (data !== null && typeof data !== "string")) return null;
  return { id, name, content_type: type, size, data };
}

export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function base64Bytes(data: string): Uint8Array<ArrayBuffer> {
  const raw = atob(data);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** A message's files: one element per id, loaded once each. */
export class FileParts {
  readonly el = document.createElement("div");
  #ids: string[] = [];
  readonly #load: FileLoader;

  constructor(load: FileLoader) {
    this.#load = load;
    this.el.className = "rxnb-files";
    this.el.hidden = true;
  }

  /** Show these ids (unchanged ids keep their element and are not fetched again). */
  show(ids: string[]): void {
    if (ids.length === this.#ids.length && ids.every((id, i) => id === this.#ids[i])) return;
    const old = new Map<string, Element>();
    for (const child of [...this.el.children]) old.set(child.getAttribute("data-file-id") ?? "", child);
    this.#ids = ids;
    this.el.replaceChildren(...ids.map((id) => old.get(id) ?? this.#part(id)));
    this.el.hidden = ids.length === 0;
  }

  #part(id: string): HTMLElement {
    const part = document.createElement("span");
    part.className = "rxnb-file";
    part.setAttribute("data-file-id", id);
    part.setAttribute("data-state", "loading");
    this.#load(id, false, (result) => {
      if (typeof result === "string") this.#failed(part, result);
      else this.#fill(part, result);
    });
    return part;
  }

  #fill(part: HTMLElement, file: FileReply): void {
    part.setAttribute("data-state", "ready");
    if (IMAGE_TYPES.has(file.content_type) && file.data !== null) {
      const img = document.createElement("img");
      img.className = "rxnb-file-image";
      img.alt = file.name;
      img.title = `${file.name} (${sizeText(file.size)})`;
      const type = [...IMAGE_TYPES].find((t) => t === file.content_type) ?? "image/png"; // rule 1
      img.src = `data:${type};base64,${file.data.replace(/[^A-Za-z0-9+/=]/g, "")}`;
      part.replaceChildren(img);
      return;
    }
    const link = document.createElement("a");
    link.className = "rxnb-file-link";
    link.href = "#";
    link.textContent = `${file.name || file.id} (${sizeText(file.size)})`;
    link.title = file.content_type;
    link.addEventListener("click", (event) => {
      event.preventDefault();
      this.#download(part, link, file);
    });
    part.replaceChildren(link);
  }

  /** Rule 2: fetch the bytes, then save them as a download. */
  #download(part: HTMLElement, link: HTMLAnchorElement, file: FileReply): void {
    if (part.getAttribute("data-state") === "downloading") return;
    part.setAttribute("data-state", "downloading");
    this.#load(file.id, true, (result) => {
      part.setAttribute("data-state", "ready");
      if (typeof result === "string" || result.data === null) {
        this.#error(part, typeof result === "string" ? result : "the kernel sent no data");
        return;
      }
      const blob = new Blob([base64Bytes(result.data)], { type: "application/octet-stream" });
      const url = URL.createObjectURL(blob);
      const save = document.createElement("a");
      save.href = url;
      save.download = file.name || file.id;
      save.hidden = true;
      link.after(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    });
  }

  #failed(part: HTMLElement, message: string): void {
    part.setAttribute("data-state", "failed");
    part.replaceChildren();
    this.#error(part, message);
  }

  #error(part: HTMLElement, message: string): void {
    let line = part.querySelector(".rxnb-file-error");
    if (line === null) {
      line = document.createElement("span");
      line.className = "rxnb-file-error";
      part.append(line);
    }
    line.textContent = message;
  }
}

/** The call a live table's `file` cells fetch their files with. */
export const FILE_CALL = "file";

/**
 * A loader calling `files.fn` if the widget binds it, else null. Files shown (not
 * downloads) are remembered: a row drawn again does not fetch its files again.
 */
export function loadFileWith(caller: Caller | null, files: { fn: string } | undefined): FileLoader | null {
  if (caller === null || files === undefined || !caller.functions.has(files.fn)) return null;
  const seen = new Map<string, FileReply>();
  return (id, download, done) => {
    const known = download ? undefined : seen.get(id);
    if (known !== undefined) {
      done(known);
      return;
    }
    caller.call(files.fn, { id, download }, (reply) => {
      const file = reply.ok ? parseFileReply(reply.result) : null;
      if (file !== null && !download) seen.set(id, file);
      if (!reply.ok) done(`${reply.error.type}: ${reply.error.message}`);
      else done(file ?? "the kernel's reply is not a file");
    });
  };
}

/** A table cell of format `file`: its files, if it names any and they can be fetched. */
export function fillFiles(td: HTMLElement, value: Json | undefined, load: FileLoader | null): boolean {
  const ids = fileIds(value);
  if (load === null || ids.length === 0) return false;
  const parts = new FileParts(load);
  parts.show(ids);
  td.append(parts.el);
  return true;
}
