/**
 * A minimal Jupyter client for tests: starts the kernel as Jupyter would (its own process, a
 * connection file), talks to it over ZMQ and collects iopub by parent. Signs with its own HMAC code
 * so that the kernel's verification is tested against an independent implementation.
 */
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as zmq from "zeromq";

import { kernelJson } from "../kernel/kernelspec";

export interface WireMsg {
  header: Record<string, unknown> & { msg_id: string; msg_type: string };
  parent_header: Record<string, unknown> & { msg_id?: string };
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
  buffers: Buffer[];
}

const DELIM = Buffer.from("<IDS|MSG>");

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve) => {
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export interface StartOptions {
  key?: string;
  scheme?: string;
  transport?: "tcp" | "ipc";
  /** Start without --no-force-async-hooks-checks. */
  plainNode?: boolean;
  cwd?: string;
  /** Another kernel's command line ({connection_file} is replaced), e.g. ipykernel for benchmarks. */
  argv?: string[];
  /** Return once the sockets are connected, without waiting for the kernel (start-up timing). */
  noWait?: boolean;
}

export class TestKernel {
  readonly proc: ChildProcess;
  stderr = "";
  stdout = "";
  readonly iopubLog: WireMsg[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly session = crypto.randomUUID();
  // As jupyter_client does: shell and stdin share one routing id, so the kernel's stdin socket can
  // route input_request to the client that sent the execute_request.
  private readonly shell = new zmq.Dealer({ linger: 0, routingId: this.session });
  private readonly control = new zmq.Dealer({ linger: 0 });
  private readonly stdin = new zmq.Dealer({ linger: 0, routingId: this.session });
  private readonly iopub = new zmq.Subscriber({ linger: 0 });
  private readonly hb = new zmq.Request({ linger: 0 });
  private readonly replies = new Map<string, WireMsg>();
  readonly stdinLog: WireMsg[] = [];
  private closed = false;
  /** performance.now() when the kernel process was spawned. */
  startedAt = 0;

  private constructor(
    readonly dir: string,
    readonly conn: Record<string, unknown>,
    options: StartOptions,
  ) {
    const file = path.join(dir, "connection.json");
    fs.writeFileSync(file, JSON.stringify(conn));
    const argv = options.argv
      ? options.argv.map((a) => a.replace("{connection_file}", file))
      : // The kernelspec's own command line, as Jupyter runs it.
        (kernelJson("test").argv as string[]).map((a) => a.replace("{connection_file}", file)).filter((a) => !(options.plainNode && a === "--no-force-async-hooks-checks"));
    this.startedAt = performance.now();
    this.proc = spawn(argv[0], argv.slice(1), { cwd: options.cwd ?? dir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYDEVD_DISABLE_FILE_VALIDATION: "1" } });
    this.proc.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
    this.proc.stdout!.on("data", (d: Buffer) => (this.stdout += d.toString()));
  }

  static async start(options: StartOptions = {}): Promise<TestKernel> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-kernel-"));
    const transport = options.transport ?? "tcp";
    const ports = transport === "tcp" ? await freePorts(5) : [1, 2, 3, 4, 5];
    const conn = {
      transport,
      ip: transport === "tcp" ? "127.0.0.1" : path.join(dir, "kernel-ipc"),
      shell_port: ports[0],
      iopub_port: ports[1],
      stdin_port: ports[2],
      control_port: ports[3],
      hb_port: ports[4],
      key: options.key ?? crypto.randomUUID(),
      signature_scheme: options.scheme ?? "hmac-sha256",
      kernel_name: "retinanet-kernel",
    };
    const k = new TestKernel(dir, conn, options);
    await k.connect(!options.noWait);
    return k;
  }

  endpoint(name: string): string {
    const port = this.conn[`${name}_port`];
    return this.conn.transport === "tcp" ? `tcp://${this.conn.ip}:${port}` : `ipc://${this.conn.ip}-${port}`;
  }

  private async connect(wait: boolean): Promise<void> {
    this.shell.connect(this.endpoint("shell"));
    this.control.connect(this.endpoint("control"));
    this.stdin.connect(this.endpoint("stdin"));
    this.iopub.connect(this.endpoint("iopub"));
    this.iopub.subscribe();
    this.hb.connect(this.endpoint("hb"));
    void this.pump(this.shell, (m) => this.replies.set(m.parent_header.msg_id!, m));
    void this.pump(this.control, (m) => this.replies.set(m.parent_header.msg_id!, m));
    void this.pump(this.stdin, (m) => this.stdinLog.push(m));
    void this.pump(this.iopub, (m) => this.iopubLog.push(m));
    if (!wait) return;
    // Like jupyter_client's wait_for_ready: kernel_info until iopub shows its status messages.
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`the kernel exited with ${this.proc.exitCode}: ${this.stderr}`);
      const id = this.send("shell", "kernel_info_request", {});
      const got = await this.waitFor(() => this.replies.has(id) && this.iopubFor(id).some((m) => m.msg_type === "status" && m.content.execution_state === "idle"), 1000).then(
        () => true,
        () => false,
      );
      if (got) return;
    }
    throw new Error(`the kernel did not become ready: ${this.stderr}`);
  }

  private async pump(sock: zmq.Dealer | zmq.Subscriber, on: (m: WireMsg) => void): Promise<void> {
    try {
      for await (const frames of sock) {
        const m = this.parse(frames as Buffer[]);
        if (m) on(m);
        for (const w of this.waiters.splice(0)) w();
      }
    } catch {
      // closed
    }
  }

  sign(parts: Buffer[]): string {
    const key = String(this.conn.key);
    if (!key) return "";
    const h = crypto.createHmac(String(this.conn.signature_scheme).slice(5), key);
    for (const p of parts) h.update(p);
    return h.digest("hex");
  }

  private parse(frames: Buffer[]): WireMsg | undefined {
    const d = frames.findIndex((f) => f.equals(DELIM));
    const [sig, h, p, md, c] = frames.slice(d + 1, d + 6);
    if (sig.toString() !== this.sign([h, p, md, c])) throw new Error("the kernel sent a message with a bad signature");
    return { header: JSON.parse(h.toString()), parent_header: JSON.parse(p.toString()), metadata: JSON.parse(md.toString()), content: JSON.parse(c.toString()), buffers: frames.slice(d + 6) };
  }

  /** Frames of a message as a client builds them. */
  frames(msgType: string, content: Record<string, unknown>, header: Partial<WireMsg["header"]> = {}): { id: string; frames: Buffer[] } {
    const id = crypto.randomUUID();
    const h = Buffer.from(JSON.stringify({ msg_id: id, session: this.session, username: "test", date: new Date().toISOString(), msg_type: msgType, version: "5.3", ...header }));
    const p = Buffer.from("{}");
    const md = Buffer.from("{}");
    const c = Buffer.from(JSON.stringify(content));
    return { id, frames: [DELIM, Buffer.from(this.sign([h, p, md, c])), h, p, md, c] };
  }

  send(channel: "shell" | "control" | "stdin", msgType: string, content: Record<string, unknown>): string {
    const { id, frames } = this.frames(msgType, content);
    this.sendRaw(channel, frames);
    return id;
  }

  private readonly sendChains = new Map<zmq.Dealer, Promise<void>>();

  /** Sends frames; zeromq.js allows one send in flight per socket, so sends are chained. */
  sendRaw(channel: "shell" | "control" | "stdin", frames: Buffer[]): void {
    const sock = channel === "shell" ? this.shell : channel === "control" ? this.control : this.stdin;
    const prev = this.sendChains.get(sock) ?? Promise.resolve();
    this.sendChains.set(sock, prev.then(() => sock.send(frames)).catch(() => undefined));
  }

  iopubFor(id: string): (WireMsg & { msg_type: string })[] {
    return this.iopubLog.filter((m) => m.parent_header.msg_id === id).map((m) => ({ ...m, msg_type: m.header.msg_type }));
  }

  async waitFor(pred: () => boolean, timeoutMs = 30000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends a request; resolves with its reply and its iopub messages once idle is seen. */
  async request(msgType: string, content: Record<string, unknown>, channel: "shell" | "control" = "shell", timeoutMs = 60000): Promise<{ id: string; reply: WireMsg; iopub: (WireMsg & { msg_type: string })[] }> {
    const id = this.send(channel, msgType, content);
    await this.waitFor(() => this.replies.has(id) && this.iopubFor(id).some((m) => m.msg_type === "status" && m.content.execution_state === "idle"), timeoutMs);
    return { id, reply: this.replies.get(id)!, iopub: this.iopubFor(id) };
  }

  reply(id: string): WireMsg | undefined {
    return this.replies.get(id);
  }

  async execute(code: string, extra: Record<string, unknown> = {}, timeoutMs = 60000) {
    const r = await this.request("execute_request", { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true, ...extra }, "shell", timeoutMs);
    const out = r.iopub;
    return {
      ...r,
      status: r.reply.content.status as string,
      stdout: out.filter((m) => m.msg_type === "stream" && m.content.name === "stdout").map((m) => m.content.text).join(""),
      stderr: out.filter((m) => m.msg_type === "stream" && m.content.name === "stderr").map((m) => m.content.text).join(""),
      result: out.find((m) => m.msg_type === "execute_result")?.content.data as Record<string, unknown> | undefined,
      error: out.find((m) => m.msg_type === "error")?.content as { ename: string; evalue: string; traceback: string[] } | undefined,
    };
  }

  /** Resolves when the reply to request `id` has arrived (no iopub wait). */
  async replyTo(id: string, timeoutMs = 60000): Promise<WireMsg> {
    await this.waitFor(() => this.replies.has(id), timeoutMs);
    return this.replies.get(id)!;
  }

  /** Heartbeat round trip in ms (REQ/REP echo). */
  async ping(timeoutMs = 2000): Promise<number> {
    const t0 = performance.now();
    await this.hb.send("ping");
    const r = await Promise.race([this.hb.receive(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error("heartbeat timeout")), timeoutMs))]);
    if (r[0].toString() !== "ping") throw new Error("heartbeat echoed something else");
    return performance.now() - t0;
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.proc.exitCode === null) {
      this.send("control", "shutdown_request", { restart: false });
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.proc.kill("SIGKILL");
          resolve();
        }, 5000);
        this.proc.once("exit", () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    for (const s of [this.shell, this.control, this.stdin, this.iopub, this.hb]) s.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
