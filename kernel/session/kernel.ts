/**
 * The kernel's session: a table from msg_type to handler, the execution queue, busy/idle around
 * every request (in finally), iopub publishing, stdin, comms, history and the cell scope. It talks
 * to the wire only through a Transport, so tests drive it without sockets.
 */
import * as fs from "fs";
import * as path from "path";

import { display, setPublisher } from "../display/api";
import { MimeBundle, isSilent } from "../display/mimebundle";
import { toBundle } from "../display/api";
import { magicsApi } from "../magics/api";
import { builtinMagics } from "../magics/index";
import { MagicContext, MagicRegistry } from "../magics/registry";
import { PACKAGE_ROOT } from "../native";
import { OutgoingMessage } from "../protocol/io-thread";
import { checkContent, replyType } from "../protocol/content";
import { Transport } from "../protocol/transport";
import { Channel, Header, Message, PROTOCOL_VERSION, newHeader } from "../protocol/wire";
import { magicAt, splitCell } from "../runtime/cell";
import { CompilerClient } from "../runtime/compiler";
import { errorContent, ErrorContent } from "../runtime/errors";
import { Executor } from "../runtime/executor";
import { tslabCompat } from "../runtime/tslab-compat";
import { CommManager, CommTarget } from "./comms";
import { History } from "./history";
import { Interrupts, KeyboardInterrupt, isInterrupt } from "./interrupt";
import { kernelLog } from "../log";
import { OutputCapture } from "./output";

export const KERNEL_VERSION: string = (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;

/** The TypeScript that type-checks cells (tslab's fork), read without loading the compiler. */
export const TYPESCRIPT_VERSION: string = (() => {
  try {
    const pkg = require.resolve("@tslab/typescript-for-tslab/package.json", { paths: [require.resolve("tslab")] });
    return (JSON.parse(fs.readFileSync(pkg, "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
})();
const TSLAB_VERSION: string = (JSON.parse(fs.readFileSync(require.resolve("tslab/package.json"), "utf8")) as { version: string }).version;

export function kernelInfoContent(): Record<string, unknown> {
  return {
    status: "ok",
    protocol_version: PROTOCOL_VERSION,
    implementation: "retinanet-kernel",
    implementation_version: KERNEL_VERSION,
    language_info: {
      name: "typescript",
      version: TYPESCRIPT_VERSION,
      mimetype: "text/typescript",
      file_extension: ".ts",
      codemirror_mode: { name: "javascript", typescript: true },
      pygments_lexer: "typescript",
    },
    banner: `retinanet-kernel ${KERNEL_VERSION}: TypeScript ${TYPESCRIPT_VERSION} (tslab ${TSLAB_VERSION}) on Node.js ${process.version}\nRetinaNet post-processing with exact framework parity. %lsmagic lists the magics; rk is the API.`,
    help_links: [
      { text: "retinanet-kernel README", url: "https://github.com/retinanet-kernel/retinanet-kernel#readme" },
      { text: "TypeScript handbook", url: "https://www.typescriptlang.org/docs/handbook/intro.html" },
      { text: "Node.js API", url: `https://nodejs.org/docs/${process.version}/api/` },
    ],
    debugger: false,
  };
}

/** iopub messages that are a cell's output (sent immediately, not batched with the next turn). */
const OUTPUT_TYPES = new Set(["stream", "display_data", "update_display_data", "clear_output", "error", "comm_msg", "comm_open", "comm_close"]);

/** RK_TRACE=1: timings of each execute on the kernel's stderr. */
const TRACE = process.env.RK_TRACE === "1";

export interface KernelOptions {
  transport: Transport;
  compiler: CompilerClient;
  session: string;
  /** Busy flag and tick shared with the I/O thread (for interrupt escalation). */
  busy?: { setBusy(busy: boolean): void; tick(): void };
  /** Capture process stdout/stderr as stream messages (the kernel process does). */
  captureOutput?: boolean;
  /** Called after shutdown_request has been answered. */
  onShutdown?: (restart: boolean) => void;
  /** The kernel's own diagnostics (bad messages, unknown types). */
  log?: (text: string) => void;
}

interface CellStore {
  msg: Message;
  allowStdin: boolean;
  /** execute_reply payloads (IPython's pager: `%name?`). */
  payload: Record<string, unknown>[];
}

type Handler = (msg: Message, channel: Channel) => Promise<void>;

export class Kernel {
  readonly session: string;
  readonly interrupts = new Interrupts();
  readonly history = new History();
  readonly comms: CommManager;
  readonly output: OutputCapture;
  readonly executor: Executor;
  readonly magics: MagicRegistry;
  readonly state = new Map<string, unknown>();
  executionCount = 0;

  private readonly transport: Transport;
  private readonly compiler: CompilerClient;
  private readonly log: (text: string) => void;
  /**
   * The request being executed. Not an AsyncLocalStorage: enabling async hooks turns Node's
   * async-stack checks on, and those abort the process when an interrupt terminates a callback
   * (protocol/io-thread.ts). Output from callbacks that outlive their cell goes to the last cell,
   * as in ipykernel.
   */
  private running: CellStore | undefined;
  /** The request being handled: comm messages sent from a handler are its children. */
  private handling: Message | undefined;
  private readonly queue: Message[] = [];
  private processing = false;
  private lastExecute: Message | undefined;
  private pendingInput: { resolve: (v: string) => void; reject: (e: Error) => void; msgId: string } | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private shutdownRequested = false;
  private readonly handlers: Record<string, Handler>;
  private readonly controlHandlers: Record<string, Handler>;

  constructor(private readonly options: KernelOptions) {
    this.session = options.session;
    this.transport = options.transport;
    this.compiler = options.compiler;
    this.log = options.log ?? ((t) => kernelLog(`[retinanet-kernel] ${t}`));
    this.executor = new Executor(this.compiler, this.interrupts, {
      modules: { tslab: tslabCompat(), "retinanet-kernel": lazyApi() },
    });
    this.magics = builtinMagics();
    this.comms = new CommManager({
      send: (msgType, content, buffers) => this.iopub(msgType, content, this.currentParent(), {}, buffers),
    });
    this.output = new OutputCapture({ stream: (name, text, parent) => this.iopubWithHeader("stream", { name, text }, parent) }, () => this.currentParent()?.header);
    this.handlers = {
      kernel_info_request: (m, ch) => this.kernelInfo(m, ch),
      execute_request: (m) => this.execute(m),
      complete_request: (m) => this.complete(m),
      inspect_request: (m) => this.inspect(m),
      is_complete_request: (m) => this.isComplete(m),
      history_request: (m) => this.historyRequest(m),
      comm_info_request: (m, ch) => this.commInfo(m, ch),
      comm_open: (m) => this.commOpen(m),
      comm_msg: async (m) => void this.comms.handleMessage(m.content as { comm_id?: string }, m.buffers),
      comm_close: async (m) => void this.comms.handleClose(m.content as { comm_id?: string }),
      shutdown_request: (m, ch) => this.shutdown(m, ch),
    };
    this.controlHandlers = {
      shutdown_request: (m, ch) => this.shutdown(m, ch),
      kernel_info_request: (m, ch) => this.kernelInfo(m, ch),
      comm_info_request: (m, ch) => this.commInfo(m, ch),
      usage_request: (m, ch) => this.usage(m, ch),
    };
    this.transport.onMessage((ch, msg) => this.receive(ch, msg));
    this.transport.onShutdown?.((restart) => {
      this.prepareShutdown();
      this.options.onShutdown?.(restart);
    });
    setPublisher({
      display: (data, metadata, id) => this.iopub("display_data", { data, metadata, transient: id ? { display_id: id } : {} }, this.currentParent()),
      update: (data, metadata, id) => this.iopub("update_display_data", { data, metadata, transient: { display_id: id } }, this.currentParent()),
      clear: (wait) => this.iopub("clear_output", { wait }, this.currentParent()),
    });
    this.installGlobals();
  }

  /** Kernel-process-only hooks: output capture, SIGINT, process.exit refusal, stray errors. */
  installProcessHooks(): void {
    if (this.options.captureOutput) this.output.install();
    this.interrupts.installSignalHandler();
    const refuse = (what: string) => () => {
      throw Object.assign(
        new Error(`${what} is refused inside the kernel: it would end the kernel and lose the session. Restart the kernel from the frontend instead (Kernel > Restart).`),
        { name: "ProcessExitRefused", code: "ERR_RK_EXIT_REFUSED" },
      );
    };
    const proc = process as unknown as { exit: (code?: number) => never; reallyExit: (code?: number) => never };
    const originals = { exit: proc.exit, reallyExit: proc.reallyExit };
    // The kernel's own way out (after a shutdown): process.exit calls process.reallyExit, so both go back.
    this.exitProcess = (code: number) => {
      proc.reallyExit = originals.reallyExit;
      proc.exit = originals.exit;
      return process.exit(code);
    };
    process.exit = refuse("process.exit()") as never;
    process.abort = refuse("process.abort()") as never;
    proc.reallyExit = refuse("process.reallyExit()") as never;
    const kill = process.kill.bind(process);
    process.kill = ((pid: number, signal?: string | number) => {
      if (pid === process.pid && signal !== "SIGINT" && signal !== 2 && signal !== 0) refuse(`process.kill(process.pid, ${JSON.stringify(signal ?? "SIGTERM")})`)();
      return kill(pid, signal);
    }) as typeof process.kill;
    // Errors nobody caught: shown on the cell that started them (or the last cell), the kernel lives on.
    process.on("unhandledRejection", (reason) => this.reportStray("UnhandledPromiseRejection", reason));
    process.on("uncaughtException", (err) => this.reportStray("UncaughtException", err));
  }

  /** Ends the process, bypassing the refusal of process.exit that installProcessHooks puts in place. */
  exitProcess: (code: number) => never = (code) => process.exit(code);

  /** The names of the prelude (runtime/prelude.ts), in the cell scope and on globalThis. */
  private installGlobals(): void {
    const values: Record<string, unknown> = {
      display,
      clearOutput: (wait = false) => this.iopub("clear_output", { wait: Boolean(wait) }, this.currentParent()),
      input: (prompt = "", opts: { password?: boolean } = {}) => this.input(String(prompt), Boolean(opts?.password)),
      magics: magicsApi(this.magics, () => this.magicContext()),
      comms: { registerTarget: (name: string, target: CommTarget) => this.comms.registerTarget(name, target), open: (t: string, d?: unknown, md?: Record<string, unknown>) => this.comms.open(t, d, md) },
      // The twin of %optimize --save: the saved winner, rebuilt (loaded lazily with the workflow).
      loadOptimized: (file: string) => (require("../magics/builtin/workflow") as typeof import("../magics/builtin/workflow")).loadOptimizedForCell(file),
    };
    for (const [name, value] of Object.entries(values)) {
      this.executor.definePrelude(name, { value, writable: true });
      Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
    }
    this.executor.definePrelude("rk", { get: lazyApi });
    Object.defineProperty(globalThis, "rk", { configurable: true, enumerable: false, get: lazyApi });
  }

  private reportStray(kind: string, reason: unknown): void {
    const parent = this.running?.msg ?? this.lastExecute;
    const e = errorContent(reason);
    this.iopub("error", { ...e, ename: `${kind}: ${e.ename}`, traceback: [`${kind} (from code of an earlier or the current cell):`, ...e.traceback] }, parent);
  }

  // ----------------------------------------------------------------------------------------------
  // Dispatch

  private receive(ch: Channel, msg: Message): void {
    if (ch === "stdin") {
      const problem = checkContent(msg.header.msg_type, msg.content);
      if (problem) {
        this.log(`refused ${msg.header.msg_type} on stdin: ${problem}`);
      } else if (msg.header.msg_type === "input_reply" && this.pendingInput) {
        const p = this.pendingInput;
        this.pendingInput = undefined;
        p.resolve(String((msg.content as { value?: unknown }).value ?? ""));
      } else {
        this.log(`ignored ${msg.header.msg_type} on stdin`);
      }
      return;
    }
    if (ch === "control") {
      void this.dispatch(msg, ch, this.controlHandlers);
      return;
    }
    this.queue.push(msg);
    void this.pump();
  }

  /** Shell messages run one at a time, in arrival order, as ipykernel runs them. */
  private async pump(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.queue.length > 0 && !this.shutdownRequested) {
        const msg = this.queue.shift()!;
        if (this.sentBeforeError(msg)) {
          this.abortExecute(msg);
          continue;
        }
        await this.dispatch(msg, "shell", this.handlers);
      }
    } finally {
      this.processing = false;
    }
  }

  private async dispatch(msg: Message, ch: Channel, table: Record<string, Handler>): Promise<void> {
    const type = msg.header.msg_type;
    const handler: Handler | undefined = Object.prototype.hasOwnProperty.call(table, type) ? table[type] : undefined;
    this.status("busy", msg);
    const previous = this.handling;
    if (ch === "shell") this.handling = msg;
    try {
      const problem = handler ? checkContent(type, msg.content) : undefined;
      if (!handler) this.log(`unknown message type ${JSON.stringify(type)} on ${ch}: ignored`);
      else if (problem) this.refuse(ch, msg, "BadRequest", problem);
      else await handler(msg, ch);
    } catch (e) {
      this.log(`handling ${type} failed: ${(e as Error).stack ?? String(e)}`);
      const err = e as Error;
      this.refuse(ch, msg, err?.name ?? "Error", `handling ${type} failed: ${err?.message ?? String(e)}`);
    } finally {
      if (ch === "shell") this.handling = previous;
      this.status("idle", msg);
    }
  }

  /** A request that cannot be served: a log line and, for a *_request, an error reply saying why. */
  private refuse(ch: Channel, msg: Message, ename: string, evalue: string): void {
    this.log(`refused ${msg.header.msg_type} on ${ch}: ${evalue}`);
    const type = replyType(msg.header.msg_type);
    if (!type) return;
    const extra = type === "execute_reply" ? { execution_count: this.executionCount, user_expressions: {}, payload: [] } : {};
    this.reply(ch, msg, type, { status: "error", ename, evalue, traceback: [`${ename}: ${evalue}`], ...extra });
  }

  // ----------------------------------------------------------------------------------------------
  // Sending

  private currentParent(): Message | undefined {
    return this.running?.msg ?? this.handling ?? this.lastExecute;
  }

  private send(ch: Channel, m: OutgoingMessage): void {
    this.transport.send(ch, m);
  }

  reply(ch: Channel, req: Message, msgType: string, content: Record<string, unknown>, metadata: Record<string, unknown> = {}): void {
    this.send(ch, { identities: req.identities, header: newHeader(msgType, this.session), parent_header: req.header, metadata, content });
  }

  iopub(msgType: string, content: Record<string, unknown>, parent: Message | undefined, metadata: Record<string, unknown> = {}, buffers?: Uint8Array[]): void {
    this.iopubWithHeader(msgType, content, parent?.header, metadata, buffers);
  }

  private iopubWithHeader(msgType: string, content: Record<string, unknown>, parent: Header | undefined, metadata: Record<string, unknown> = {}, buffers?: Uint8Array[]): void {
    if (msgType !== "stream") this.output.flush();
    const topic = msgType === "stream" ? `stream.${String(content.name)}` : `kernel.${this.session}.${msgType}`;
    this.send("iopub", { identities: [Buffer.from(topic)], header: newHeader(msgType, this.session), parent_header: parent ?? {}, metadata, content, buffers });
    // Outputs go out at once: the cell may be running synchronous code that holds the event loop.
    if (OUTPUT_TYPES.has(msgType)) this.transport.flush?.();
  }

  status(state: "busy" | "idle" | "starting", parent?: Message): void {
    this.iopub("status", { execution_state: state }, parent);
  }

  // ----------------------------------------------------------------------------------------------
  // Requests

  private async kernelInfo(msg: Message, ch: Channel): Promise<void> {
    this.reply(ch, msg, "kernel_info_reply", kernelInfoContent());
  }

  private beginBusy(): void {
    this.options.busy?.setBusy(true);
    if (this.options.busy && !this.tickTimer) {
      const busy = this.options.busy;
      this.tickTimer = setInterval(() => busy.tick(), 50);
      this.tickTimer.unref();
    }
  }

  private endBusy(): void {
    this.options.busy?.setBusy(false);
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = undefined;
    this.interrupts.disarm();
  }

  private async execute(msg: Message): Promise<void> {
    const trace = TRACE ? { t0: performance.now(), marks: [] as string[] } : undefined;
    const mark = (what: string) => trace?.marks.push(`${what} ${(performance.now() - trace.t0).toFixed(2)}`);
    const c = msg.content as { code?: unknown; silent?: boolean; store_history?: boolean; user_expressions?: Record<string, string>; allow_stdin?: boolean; stop_on_error?: boolean };
    const code = typeof c.code === "string" ? c.code : "";
    const silent = c.silent === true;
    const storeHistory = !silent && c.store_history !== false;
    if (storeHistory) this.executionCount++;
    const count = this.executionCount;
    if (!silent) this.iopub("execute_input", { code, execution_count: count }, msg);
    if (storeHistory) this.history.add(count, code);
    if (!silent) this.lastExecute = msg;
    const started = new Date().toISOString();
    let content: Record<string, unknown>;
    this.beginBusy();
    this.output.startCell();
    this.interrupts.arm();
    let failed: ErrorContent | undefined;
    try {
      const payload: Record<string, unknown>[] = [];
      mark("start");
      // The cell starts in a microtask of its own, after this handler awaits it raced against an interrupt:
      // when an interrupt has to terminate JavaScript stuck in a synchronous loop (a magic's own
      // loop, which breakOnSigint does not reach), only the cell's task is unwound, and the
      // interrupt still settles this race, so the request is answered and the queue goes on.
      const cell = Promise.resolve().then(() => this.withCell({ msg, allowStdin: c.allow_stdin === true, payload }, () => this.runCell(code)));
      const result = await this.interrupts.race(cell);
      mark("ran");
      if (result.hasValue && !silent && !isSilent(result.value)) {
        const data = toBundle(result.value);
        this.iopub("execute_result", { execution_count: count, data, metadata: {} }, msg);
        if (storeHistory) this.history.setOutput(count, String(data["text/plain"] ?? ""));
      }
      const userExpressions = await this.withCell({ msg, allowStdin: false, payload: [] }, () => this.userExpressions(c.user_expressions));
      content = { status: "ok", execution_count: count, user_expressions: userExpressions, payload };
    } catch (e) {
      failed = errorContent(isInterrupt(e) ? new KeyboardInterrupt() : e);
      this.iopub("error", { ...failed }, msg);
      content = { status: "error", execution_count: count, ...failed, user_expressions: {}, payload: [] };
    } finally {
      this.output.endCell();
      this.endBusy();
      this.running = undefined; // a terminated cell never ran withCell's own reset
    }
    const repliedAt = Date.now();
    this.reply("shell", msg, "execute_reply", content, { started, dependencies_met: true, engine: this.session, status: content.status });
    mark("replied");
    if (trace) this.log(`trace execute: ${trace.marks.join(", ")}`);
    if (failed && c.stop_on_error !== false) this.abortQueued(repliedAt);
  }

  /**
   * After an error with stop_on_error, queued execute requests are answered "aborted", and so are
   * those still on their way: a request the client sent before the error reply left (its header's
   * date, within a second of the error, so that a skewed clock cannot abort later work) was queued
   * behind the failed cell, even when a busy machine delivers it after the error.
   */
  private abortQueued(repliedAt: number): void {
    this.abortSentBefore = { errorAt: repliedAt, until: Date.now() + 1000 };
    const keep: Message[] = [];
    for (const m of this.queue.splice(0)) {
      if (m.header.msg_type !== "execute_request") keep.push(m);
      else this.abortExecute(m);
    }
    this.queue.push(...keep);
  }

  private abortSentBefore?: { errorAt: number; until: number };

  private sentBeforeError(msg: Message): boolean {
    const a = this.abortSentBefore;
    if (!a || msg.header.msg_type !== "execute_request") return false;
    if (Date.now() > a.until) {
      this.abortSentBefore = undefined;
      return false;
    }
    const sent = Date.parse(String((msg.header as { date?: unknown }).date ?? ""));
    // Strictly before the millisecond of the error reply: a request sent in reply to it is never aborted.
    return Number.isFinite(sent) && sent < a.errorAt;
  }

  private abortExecute(m: Message): void {
    this.status("busy", m);
    this.reply("shell", m, "execute_reply", { status: "aborted", execution_count: this.executionCount }, { status: "aborted", engine: this.session });
    this.status("idle", m);
  }

  private async withCell<T>(store: CellStore, fn: () => Promise<T>): Promise<T> {
    const previous = this.running;
    this.running = store;
    try {
      return await fn();
    } finally {
      this.running = previous;
    }
  }

  /** Runs a cell's segments in order; the last segment's value is the cell's value. */
  async runCell(code: string): Promise<{ hasValue: boolean; value?: unknown }> {
    let last: { hasValue: boolean; value?: unknown } = { hasValue: false };
    for (const seg of splitCell(code)) {
      if (seg.kind === "ts") {
        const r = await this.executor.runTs(seg.code, seg.firstLine, `cell ${this.executionCount}`);
        this.state.set("compileMsTotal", ((this.state.get("compileMsTotal") as number | undefined) ?? 0) + r.compileMs);
        last = r;
      } else if (seg.help) {
        // `%name?` opens the frontend's pager, as `name?` does in IPython; without a cell (magics.run) it prints.
        const text = this.magics.helpText(seg.name);
        const store = this.running;
        if (store) store.payload.push({ source: "page", data: { "text/plain": text }, start: 0 });
        else process.stdout.write(text);
        last = { hasValue: false };
      } else {
        const out = await this.interrupts.race(this.magics.run(this.magicContext(), seg.name, { args: seg.args, body: seg.body, cell: seg.body !== undefined }));
        last = "value" in out && out.value !== undefined ? { hasValue: true, value: out.value } : { hasValue: false };
      }
    }
    return last;
  }

  magicContext(): MagicContext {
    return {
      executor: this.executor,
      display,
      interrupts: this.interrupts,
      registry: this.magics,
      runCell: (code) => this.runCell(code),
      state: this.state,
    };
  }

  private async userExpressions(exprs: Record<string, string> | undefined): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const [name, expr] of Object.entries(exprs ?? {})) {
      try {
        const r = await this.executor.runTs(String(expr), 0);
        out[name] = { status: "ok", data: r.hasValue ? toBundle(r.value) : { "text/plain": "undefined" }, metadata: {} };
      } catch (e) {
        out[name] = { status: "error", ...errorContent(e) };
      }
    }
    return out;
  }

  /** `await input("name?")` in a cell: an input_request on stdin, answered by input_reply. */
  private input(prompt: string, password: boolean): Promise<string> {
    const store = this.running;
    if (!store?.allowStdin) {
      return Promise.reject(
        Object.assign(new Error("input() needs a frontend that accepts input: this execute_request was sent with allow_stdin=false"), {
          name: "StdinNotImplementedError",
          code: "ERR_RK_STDIN",
        }),
      );
    }
    if (this.pendingInput) return Promise.reject(Object.assign(new Error("Expected one input() at a time but another is waiting for its reply"), { code: "ERR_RK_STDIN" }));
    const req = store.msg;
    const header = newHeader("input_request", this.session);
    this.output.flush();
    this.send("stdin", { identities: req.identities, header, parent_header: req.header, metadata: {}, content: { prompt, password } });
    const answer = new Promise<string>((resolve, reject) => {
      this.pendingInput = { resolve, reject, msgId: header.msg_id };
    });
    return this.interrupts.race(answer).finally(() => {
      this.pendingInput = undefined;
    });
  }

  private async complete(msg: Message): Promise<void> {
    const c = msg.content as { code?: string; cursor_pos?: number };
    const code = c.code ?? "";
    const cursor = codePointToUnit(code, c.cursor_pos ?? code.length);
    let matches: string[] = [];
    let start = cursor;
    let end = cursor;
    const magic = magicAt(code, cursor);
    if (magic && !magic.inArgs) {
      const sigil = code.slice(magic.lineStart, magic.start).trim();
      matches = this.magics
        .list()
        .filter((m) => m.name.startsWith(magic.name) && (sigil === "%%" ? m.kind !== "line" : m.kind !== "cell"))
        .map((m) => `${sigil}${m.name}`);
      start = magic.start - sigil.length;
      end = magic.end;
    } else if (magic && magic.inArgs) {
      const before = code.slice(magic.lineStart, cursor);
      const word = /[\w.=-]*$/.exec(before)![0];
      const m = this.magics.get(magic.name);
      const candidates = m ? [...(m.args.options ?? []).map((o) => `--${o.name}`), ...((m as { completions?: () => string[] }).completions?.() ?? [])] : [];
      matches = candidates.filter((x) => x.startsWith(word));
      start = cursor - word.length;
    } else {
      await this.compiler.ready;
      const info = await this.compiler.complete(this.executor.prevDecl, blankMagicLines(code), cursor);
      matches = info.candidates;
      start = info.start;
      end = info.end;
    }
    this.reply("shell", msg, "complete_reply", {
      status: "ok",
      matches,
      cursor_start: unitToCodePoint(code, start),
      cursor_end: unitToCodePoint(code, end),
      metadata: {},
    });
  }

  private async inspect(msg: Message): Promise<void> {
    const c = msg.content as { code?: string; cursor_pos?: number; detail_level?: number };
    const code = c.code ?? "";
    const cursor = codePointToUnit(code, c.cursor_pos ?? code.length);
    const magic = magicAt(code, cursor);
    let data: MimeBundle = {};
    if (magic && magic.name && this.magics.get(magic.name)) {
      data = { "text/plain": this.magics.helpText(magic.name) };
    } else {
      await this.compiler.ready;
      const info = await this.compiler.inspect(this.executor.prevDecl, blankMagicLines(code), cursor);
      if (info) {
        const signature = (info.displayParts ?? []).map((p) => p.text).join("");
        const doc = (info.documentation ?? []).map((p) => p.text).join("");
        const tags = (info.tags ?? []).map((t) => `@${t.name} ${(t.text ?? []).map((x) => x.text).join("")}`).join("\n");
        data = { "text/plain": [signature, doc, tags].filter((s) => s.length > 0).join("\n\n") };
      }
    }
    const found = Object.keys(data).length > 0;
    this.reply("shell", msg, "inspect_reply", { status: "ok", found, data, metadata: {} });
  }

  private async isComplete(msg: Message): Promise<void> {
    const code = String((msg.content as { code?: unknown }).code ?? "");
    const r = await this.compiler.isComplete(code);
    this.reply("shell", msg, "is_complete_reply", r.status === "incomplete" ? { status: r.status, indent: r.indent ?? "" } : { status: r.status });
  }

  private async historyRequest(msg: Message): Promise<void> {
    this.reply("shell", msg, "history_reply", { status: "ok", history: this.history.query(msg.content) });
  }

  private async commInfo(msg: Message, ch: Channel): Promise<void> {
    const target = (msg.content as { target_name?: string }).target_name;
    this.reply(ch, msg, "comm_info_reply", { status: "ok", comms: this.comms.info(target) });
  }

  private async commOpen(msg: Message): Promise<void> {
    const content = msg.content as { comm_id?: string; target_name?: string; data?: unknown };
    if (!this.comms.handleOpen(content, msg.buffers)) {
      this.log(`no comm target ${JSON.stringify(content.target_name)}: closing comm ${content.comm_id}`);
      this.iopub("comm_close", { comm_id: content.comm_id, data: {} }, msg);
    }
  }

  private async usage(msg: Message, ch: Channel): Promise<void> {
    const mem = process.memoryUsage();
    this.reply(ch, msg, "usage_reply", { hostname: require("os").hostname(), kernel_cpu: process.cpuUsage().user / 1e6, kernel_memory: mem.rss, host_virtual_memory: {}, pid: process.pid });
  }

  /** Stops taking work: queued requests are dropped, a waiting input() is ended, output flushed. */
  prepareShutdown(): void {
    this.shutdownRequested = true;
    this.queue.length = 0;
    this.pendingInput?.reject(new KeyboardInterrupt("the kernel is shutting down"));
    this.output.flush();
  }

  /** shutdown_request on a transport that does not answer it itself (tests without sockets). */
  private async shutdown(msg: Message, ch: Channel): Promise<void> {
    const restart = (msg.content as { restart?: boolean }).restart === true;
    this.prepareShutdown();
    this.reply(ch, msg, "shutdown_reply", { status: "ok", restart });
    // The closing idle goes out first (dispatch sends it after this returns), then the wire closes.
    setImmediate(() => this.options.onShutdown?.(restart));
  }
}

/** The post-processing API, loaded on first use (keeps kernel start fast). */
let api: unknown;
function lazyApi(): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  api ??= require("../postprocess/api");
  return api;
}

/** Jupyter counts cursor positions in code points; JavaScript strings in UTF-16 units. */
export function codePointToUnit(s: string, cp: number): number {
  let units = 0;
  for (let i = 0; i < cp && units < s.length; i++) units += s.codePointAt(units)! > 0xffff ? 2 : 1;
  return Math.min(units, s.length);
}

export function unitToCodePoint(s: string, unit: number): number {
  let cps = 0;
  for (let u = 0; u < unit && u < s.length; cps++) u += s.codePointAt(u)! > 0xffff ? 2 : 1;
  return cps;
}

/** Magic lines blanked to spaces of the same length, so TypeScript offsets stay right. */
function blankMagicLines(code: string): string {
  return code
    .split("\n")
    .map((l) => (/^\s*%/.test(l) ? " ".repeat(l.length) : l))
    .join("\n");
}
