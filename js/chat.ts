/**
 * The chat view (a table payload with a `chat` field, docs/widget-protocol.md):
 * `div.rxnb-chat`, shown instead of the table.
 *
 * Responsibilities:
 * - the log `.rxnb-chat-log`: one `MessageBlock` (chat-message.ts) per row, in row
 *   order, found again by key on each update, so a diff touches only the messages it
 *   changed (a row array a diff left alone is not even looked at);
 * - one animation-frame loop per view for the smooth text of every message (smooth.ts),
 *   running only while some text is still being revealed;
 * - the abort calls: a message's button stays disabled until its reply, and a failed
 *   reply shows in `.rxnb-call-error` above the log, as a row action's does;
 * - tool calls (when the `chat` field has a `tool` part): a row whose role is "tool" is a
 *   `ToolCard` (chat-tool.ts) instead of a message block; its Approve and Deny call
 *   `approve`, both disabled until the reply, a failed reply shown next to them;
 * - auto-scroll: while the log is at its bottom (within `STICK_PX`), new content keeps
 *   it there; once the reader scrolls up, it stays put until they scroll back down;
 * - a paged chat (chat-pages.ts): scrolled to the top, the log asks for the page before;
 *   rows that arrive above what the reader sees leave what they see where it was (the
 *   first message that stays is kept at the same place on screen);
 * - the input and its optimistic messages (chat-input.ts);
 * - once the kernel side is gone (connection.ts): the input, every abort button and
 *   every approval's buttons disabled; the messages stay as last received (the
 *   stylesheet stops their spinners).
 *
 * `dispose` cancels the frame, the timers and the calls in flight.
 */
import { CallError } from "./actions";
import type { Caller } from "./calls";
import { ChatInput, type SentRow } from "./chat-input";
import { EARLIER_PX, EarlierPages } from "./chat-pages";
import { cellText, LIVE_STATUSES, MessageBlock, type AbortControl, type MessageFields } from "./chat-message";
import { fileIds, loadFileWith } from "./file-part";
import { ToolCard, type ApprovalControl, type ToolFields } from "./chat-tool";
import type { Connection } from "./connection";
import type { ChatView, Json, Payload, Row } from "./protocol";
import { FrameLoop, type Motion } from "./smooth";
import { identify } from "./table";

/** How close to the bottom (px) still counts as at the bottom. */
export const STICK_PX = 24;

/** Where each of the chat's columns is in a row (-1: not there). */
interface Columns {
  text: number;
  role: number;
  status: number;
  usage: number;
  error: number;
  detail: number;
  note: number;
  /** The column naming the message's stored files (file-part.ts). */
  files: number;
  /** The first key column: the abort call's argument. */
  key: number;
  /** The tool call columns, when the `chat` field has a `tool` part (else null). */
  tool: { name: number; args: number; approval: number; call: number } | null;
}

/** What a message block or a tool card shows: the row's status and its failure and note. */
type Common = Pick<MessageFields, "key" | "role" | "status" | "error" | "detail" | "note">;

/** What the log holds for a row. */
type Block = MessageBlock | ToolCard;

function columnsOf(payload: Payload, chat: ChatView): Columns {
  const at = (name: string | null): number => (name === null ? -1 : payload.columns.indexOf(name));
  return {
    text: at(chat.text),
    role: at(chat.role),
    status: at(chat.status),
    usage: at(chat.usage),
    error: at(chat.error),
    detail: at(chat.detail),
    note: at(chat.note),
    files: at(chat.files?.column ?? null),
    key: payload.key?.[0] ?? -1,
    tool:
      chat.tool === undefined
        ? null
        : {
            name: at(chat.tool.name),
            args: at(chat.tool.arguments),
            approval: at(chat.tool.approval),
            call: at(chat.tool.call),
          },
  };
}

export class ChatPanel implements AbortControl, ApprovalControl {
  readonly root: HTMLDivElement;
  readonly log: HTMLDivElement;
  readonly #caller: Caller | null;
  readonly #motion: Motion;
  readonly #input: ChatInput;
  readonly #callError: CallError;
  readonly #earlier: EarlierPages;
  readonly #loop: FrameLoop;
  #blocks = new Map<string, Block>();
  readonly #animating = new Set<MessageBlock>();
  /** Abort calls waiting for their reply, by their arguments, with what forgets each. */
  readonly #pending = new Map<string, () => void>();
  /** Approve / deny calls waiting for their reply, by call id, with what forgets each. */
  readonly #deciding = new Map<string, () => void>();
  #layout = "";
  #chat: ChatView | null = null;
  #columns: Columns | null = null;
  #connection: Connection = "connected";
  /** Whether new content keeps the log scrolled to its bottom. */
  #stuck = true;
  /** The log's scrollTop when last seen, to tell the reader scrolling up. */
  #lastTop = 0;

  constructor(parent: HTMLElement, caller: Caller | null, motion: Motion) {
    this.#caller = caller;
    this.#motion = motion;
    this.root = document.createElement("div");
    this.root.className = "rxnb-chat";
    this.log = document.createElement("div");
    this.log.className = "rxnb-chat-log";
    // Rows prepended above the reader are anchored here (#place), not by the browser too.
    this.log.style.overflowAnchor = "none";
    this.log.addEventListener("scroll", () => this.#onScroll());
    this.#input = new ChatInput(this.log, caller, () => {
      this.#stuck = true; // the reader just sent: show what they sent, and the reply
      this.#follow();
    });
    this.#callError = new CallError(this.log);
    this.#earlier = new EarlierPages(caller, this.#callError);
    this.#loop = new FrameLoop(motion, (now) => this.#frame(now));
    this.root.append(this.log, this.#input.form);
    parent.append(this.root);
  }

  /** Whether the log follows new content (it is scrolled to its bottom). */
  get following(): boolean {
    return this.#stuck;
  }

  update(payload: Payload): void {
    const chat = payload.chat;
    if (chat === undefined) return;
    const layout = JSON.stringify([chat, payload.columns, payload.key]);
    if (layout !== this.#layout) {
      // A new `chat` field comes as a full: columns may mean other things now.
      this.#layout = layout;
      this.#chat = chat;
      this.#columns = columnsOf(payload, chat);
      for (const block of this.#blocks.values()) block.el.remove();
      this.#blocks.clear();
      this.#animating.clear();
      this.#input.configure(chat.send, chat.placeholder);
      this.#earlier.configure(this.log, chat.earlier);
    }
    const now = this.#motion.now();
    const columns = this.#columns!;
    const next = new Map<string, Block>();
    const sent: SentRow[] = [];
    for (const { id, key, row } of identify(payload)) {
      const role = columns.role < 0 ? null : row[columns.role];
      const tool = columns.tool !== null && role === "tool";
      let block = this.#blocks.get(id);
      // A row that became a tool call, or stopped being one, gets a new block.
      if (block !== undefined && (block instanceof ToolCard) !== tool) block = undefined;
      if (block === undefined) {
        block = tool ? new ToolCard(this.#toolFields(key, row), this) : new MessageBlock(this.#fields(key, row), this, now);
      } else if (block.row !== row) {
        if (block instanceof ToolCard) block.set(this.#toolFields(key, row));
        else if (block.set(this.#fields(key, row), now)) this.#animating.add(block);
      }
      block.row = row;
      next.set(id, block);
      sent.push({ id, role: cellText(role), text: cellText(row[columns.text]) });
    }
    this.#place(next);
    this.#input.reconcile(sent);
    if (this.#animating.size > 0) this.#loop.wake();
    this.#follow();
    this.#fill();
  }

  /** The state of a paged chat's earlier pages (`idle`, `loading`, `done`), or null. */
  get earlier(): string | null {
    return this.#earlier.paged ? this.#earlier.state : null;
  }

  dispose(): void {
    this.#loop.stop();
    this.#earlier.dispose();
    this.#input.dispose();
    for (const forget of this.#pending.values()) forget();
    this.#pending.clear();
    for (const forget of this.#deciding.values()) forget();
    this.#deciding.clear();
    this.#callError.remove();
    this.root.remove();
  }

  /** Whether the kernel side is there; once gone, nothing here may call it. */
  setConnection(connection: Connection): void {
    this.#connection = connection;
    this.#input.setConnected(this.connected);
    if (!this.connected) this.#earlier.stop();
    this.#refreshControls();
  }

  // AbortControl, for the blocks' abort buttons.

  get connected(): boolean {
    return this.#connection === "connected";
  }

  waiting(args: Record<string, Json>): boolean {
    return this.#pending.has(JSON.stringify(args));
  }

  abort(args: Record<string, Json>): void {
    const cancel = this.#chat?.cancel;
    const id = JSON.stringify(args);
    if (cancel == null || this.#caller === null || !this.connected || this.#pending.has(id)) return;
    const forget = this.#caller.call(cancel.fn, args, (reply) => {
      this.#pending.delete(id);
      this.#refreshControls();
      if (!reply.ok) this.#callError.show(reply.error);
    });
    this.#pending.set(id, forget);
    this.#refreshControls();
  }

  // ApprovalControl, for the tool cards' Approve and Deny.

  deciding(call: Json): boolean {
    return this.#deciding.has(JSON.stringify(call));
  }

  decide(call: Json, approved: boolean, note: string): void {
    const approve = this.#chat?.approve;
    const id = JSON.stringify(call);
    if (approve === undefined || this.#caller === null || !this.#caller.functions.has(approve.fn)) return;
    if (!this.connected || this.#deciding.has(id)) return;
    const args: Record<string, Json> = { [approve.arg]: call, approved, note };
    const forget = this.#caller.call(approve.fn, args, (reply) => {
      this.#deciding.delete(id);
      this.#refreshControls();
      if (reply.ok) return;
      // The card showing that call now (the one clicked may have been rebuilt since).
      for (const block of this.#blocks.values()) {
        if (block instanceof ToolCard && block.callKey === id) block.showApprovalError(reply.error);
      }
    });
    this.#deciding.set(id, forget);
    this.#refreshControls();
  }

  #refreshControls(): void {
    for (const block of this.#blocks.values()) {
      if (block instanceof ToolCard) block.refreshApproval();
      else block.refreshAbort();
    }
  }

  /** The parts of `row` every block shows, read through the `chat` field's columns. */
  #common(key: string | null, row: Row): Common {
    const columns = this.#columns!;
    const cell = (i: number): Json => (i < 0 ? null : (row[i] ?? null));
    const text = (i: number): string | null => (cell(i) === null ? null : cellText(cell(i)));
    const role = cell(columns.role);
    return {
      key,
      role: typeof role === "string" ? role : "",
      status: text(columns.status),
      error: text(columns.error),
      detail: text(columns.detail),
      note: text(columns.note),
    };
  }

  /** What `row` shows as a message. */
  #fields(key: string | null, row: Row): MessageFields {
    const columns = this.#columns!;
    const cancel = this.#chat!.cancel;
    const cell = (i: number): Json => (i < 0 ? null : (row[i] ?? null));
    const common = this.#common(key, row);
    const { role, status } = common;
    const abortable =
      cancel !== null &&
      this.#caller?.functions.has(cancel.fn) === true &&
      columns.key >= 0 &&
      role === "assistant" &&
      status !== null &&
      LIVE_STATUSES.has(status);
    return {
      ...common,
      text: cellText(cell(columns.text)),
      usage: cell(columns.usage),
      abort: abortable ? { [cancel.arg]: cell(columns.key) } : null,
      files: fileIds(cell(columns.files)),
      loadFile: loadFileWith(this.#caller, this.#chat!.files),
    };
  }

  /** What `row` shows as a tool call (the `chat` field has a `tool` part). */
  #toolFields(key: string | null, row: Row): ToolFields {
    const columns = this.#columns!;
    const tool = columns.tool!;
    const approve = this.#chat!.approve;
    const cell = (i: number): Json => (i < 0 ? null : (row[i] ?? null));
    const { role: _role, ...common } = this.#common(key, row);
    const approvalCell = cell(tool.approval);
    const approval = approvalCell === null ? null : cellText(approvalCell);
    const call = cell(tool.call);
    const approvable =
      approval === "pending" &&
      approve !== undefined &&
      this.#caller?.functions.has(approve.fn) === true &&
      call !== null;
    return {
      ...common,
      name: cellText(cell(tool.name)),
      args: cellText(cell(tool.args)),
      approval,
      call,
      result: cellText(cell(columns.text)),
      approvable,
      files: fileIds(cell(columns.files)),
      loadFile: loadFileWith(this.#caller, this.#chat!.files),
    };
  }

  /**
   * Make the log hold `next`'s blocks in order, after the earlier pages' line and before
   * the optimistic messages. Scrolled up, the first block that stays is kept where the
   * reader sees it, so rows arriving above (an earlier page) do not move the view.
   */
  #place(next: Map<string, Block>): void {
    let anchor: HTMLElement | null = null;
    let anchorTop = 0;
    if (!this.#stuck) {
      for (const [id, block] of this.#blocks) {
        if (next.get(id) === block) {
          anchor = block.el;
          anchorTop = anchor.getBoundingClientRect().top;
          break;
        }
      }
    }
    for (const [id, block] of this.#blocks) {
      if (next.get(id) !== block) {
        block.el.remove();
        if (block instanceof MessageBlock) this.#animating.delete(block);
      }
    }
    // Walk the wanted order against the DOM; nodes already in place are not moved.
    const top = this.#earlier.el;
    let cursor = top.parentNode === this.log ? top.nextSibling : this.log.firstChild;
    for (const { el } of next.values()) {
      if (el === cursor) cursor = cursor.nextSibling;
      else this.log.insertBefore(el, cursor);
    }
    this.#blocks = next;
    if (anchor !== null) {
      const moved = anchor.getBoundingClientRect().top - anchorTop;
      if (moved !== 0) this.log.scrollTop += moved;
      this.#lastTop = this.log.scrollTop;
    }
  }

  /** A paged chat whose log is laid out but too short to scroll asks for more itself. */
  #fill(): void {
    const { scrollHeight, clientHeight } = this.log;
    if (clientHeight > 0 && scrollHeight <= clientHeight) this.#earlier.load(this.connected, true);
  }

  /** One animation frame: reveal more of each streaming text; true while any has more. */
  #frame(now: number): boolean {
    const reduced = this.#motion.reduced();
    let changed = false;
    for (const block of this.#animating) {
      const step = block.frame(now, reduced);
      changed ||= step.changed;
      if (!step.more) this.#animating.delete(block);
    }
    if (changed) this.#follow();
    return this.#animating.size > 0;
  }

  /**
   * At the bottom (within `STICK_PX`): follow. Scrolled up, and not near the bottom:
   * stay. A scroll down that stops short changes nothing: our own scroll to the bottom
   * lands short when content grew before its scroll event came, and must not stop
   * the following.
   */
  #onScroll(): void {
    const { scrollHeight, scrollTop, clientHeight } = this.log;
    if (scrollHeight - scrollTop - clientHeight <= STICK_PX) this.#stuck = true;
    else if (scrollTop < this.#lastTop) this.#stuck = false;
    this.#lastTop = scrollTop;
    if (scrollTop <= EARLIER_PX && scrollHeight > clientHeight) this.#earlier.load(this.connected);
  }

  /** Keep the log at its bottom, unless the reader scrolled up. */
  #follow(): void {
    if (!this.#stuck) return;
    this.log.scrollTop = this.log.scrollHeight;
    this.#lastTop = this.log.scrollTop;
  }
}
