/**
 * The I/O thread: a worker thread that owns the five ZMQ sockets, so that the wire keeps working
 * while the main thread runs user code that does not yield.
 *
 *  - heartbeat is echoed here (Jupyter restarts kernels whose heartbeat stops);
 *  - every incoming message is verified here (bad or missing signatures are dropped and logged on
 *    stderr, never reach the main thread) and posted to the main thread parsed;
 *  - outgoing messages from the main thread are signed and sent here, one send at a time per socket;
 *  - interrupt_request is handled here, because the main thread may be stuck in `while (true) {}`;
 *  - shutdown_request is answered here too, for the same reason and because of how Jupyter restarts
 *    a kernel: jupyter_server records the last status it saw on iopub, and after a restart it
 *    "nudges" the new kernel with kernel_info requests until iopub delivers a message, but only when
 *    that recorded status is not "busy". So the shutdown's reply and its closing "idle" must both
 *    leave before iopub closes, whatever the main thread is doing; the main thread is then told to
 *    clean up, and if it does not close the wire within SHUTDOWN_GRACE_MS (a cell that never yields)
 *    this thread flushes, closes the sockets and ends the process itself;
 *  - the parent is watched: when JPY_PARENT_PID is set (jupyter_client sets it) and that process
 *    goes away, the kernel shuts down, as ipykernel does, instead of living on as an orphan.
 *
 * Interrupting: tslab's approach (vm.runInThisContext with breakOnSigint) stops a cell's top-level
 * synchronous code on SIGINT, which this thread sends to the process. It cannot stop a loop that
 * runs later, in a timer or promise callback, because the main thread never returns to the event
 * loop to see the signal. For that case this thread watches the main thread's tick counter; if the
 * counter stands still while a cell is busy, it asks V8 (through the inspector, connected to the
 * main thread) to terminate the running JavaScript. Node aborts on the async-hooks bookkeeping a
 * terminated callback leaves behind unless it runs with --no-force-async-hooks-checks, which the
 * kernelspec passes; without that flag this escalation is not attempted.
 */
import * as inspector from "inspector";
import { parentPort, workerData } from "worker_threads";
import * as zmq from "zeromq";

import { ConnectionInfo, endpoint } from "./connection";
import { Channel, Header, Message, Signer, WireError, newHeader, parseMessage, serializeMessage } from "./wire";

/** Shared Int32Array slots between the main thread and this one. */
export const SHARED = {
  BUSY: 0, // 1 while user code runs
  TICK: 1, // bumped by the main thread every 50 ms while busy
  INTERRUPTS: 2, // interrupt requests handled
  TERMINATIONS: 3, // escalations to V8 terminateExecution
  HOOKS_ENABLED: 4, // 1 once the main thread enabled async hooks: termination is then unsafe
} as const;

export interface IoThreadData {
  connection: ConnectionInfo;
  shared: SharedArrayBuffer;
  session: string;
  /** kernel_info_reply content, answered here on the control channel even while busy. */
  kernelInfo: Record<string, unknown>;
  canTerminate: boolean;
  /** The process to watch (JPY_PARENT_PID); undefined: none. */
  parentPid?: number;
}

/** How long the main thread has to close the wire after a shutdown before this thread ends the process. */
export const SHUTDOWN_GRACE_MS = 1500;
/** How often the parent is looked for. */
const PARENT_POLL_MS = 1000;

/** Messages main -> I/O thread. */
export type ToIo =
  | { t: "send"; batch: { ch: Channel; m: OutgoingMessage }[] }
  | { t: "close" };

/** Messages I/O thread -> main. */
export type FromIo =
  | { t: "ready"; endpoints: Record<string, string> }
  | { t: "msg"; ch: Channel; m: Message }
  /** A shutdown was answered on the wire (or the parent died): clean up, then send "close". */
  | { t: "shutdown"; restart: boolean }
  /** The sockets are closed (what was queued has been handed to ZMQ). */
  | { t: "closed" }
  | { t: "fatal"; error: string };

export interface OutgoingMessage {
  identities: Uint8Array[];
  header: Header;
  parent_header: Header | Record<string, never>;
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
  buffers?: Uint8Array[];
}

const log = (text: string) => process.stderr.write(`[retinanet-kernel io] ${text}\n`);

/** Sends on one socket strictly one at a time (zeromq.js refuses overlapping sends). */
class SendQueue {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly socket: zmq.Socket & { send(m: Buffer[]): Promise<void> }, private readonly name: string) {}
  push(frames: Buffer[]): void {
    this.chain = this.chain.then(
      async () => {
        try {
          await this.socket.send(frames);
        } catch (e) {
          log(`send on ${this.name} failed: ${(e as Error).message}`);
        }
      },
      () => undefined,
    );
  }
  drain(): Promise<void> {
    return this.chain;
  }
}

async function main(): Promise<void> {
  const data = workerData as IoThreadData;
  const conn = data.connection;
  const shared = new Int32Array(data.shared);
  const signer = new Signer(conn.key, conn.signature_scheme);
  const port = parentPort!;

  const shell = new zmq.Router({ linger: 0 });
  const control = new zmq.Router({ linger: 0 });
  const stdin = new zmq.Router({ linger: 0 });
  const iopub = new zmq.Publisher({ linger: 1000, sendHighWaterMark: 100000 });
  const hb = new zmq.Reply({ linger: 0 });
  const endpoints: Record<string, string> = {};
  try {
    for (const [name, sock] of [["shell", shell], ["control", control], ["stdin", stdin], ["iopub", iopub], ["hb", hb]] as const) {
      endpoints[name] = endpoint(conn, name);
      await sock.bind(endpoints[name]);
    }
  } catch (e) {
    port.postMessage({ t: "fatal", error: `binding the kernel's sockets failed: ${(e as Error).message}` } satisfies FromIo);
    return;
  }
  const queues: Record<Channel, SendQueue> = {
    shell: new SendQueue(shell, "shell"),
    control: new SendQueue(control, "control"),
    stdin: new SendQueue(stdin, "stdin"),
    iopub: new SendQueue(iopub, "iopub"),
  };

  const send = (ch: Channel, m: OutgoingMessage) => {
    const frames = serializeMessage(
      {
        ...m,
        identities: m.identities.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
        buffers: (m.buffers ?? []).map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
      },
      signer,
    );
    queues[ch].push(frames);
  };

  const reply = (ch: Channel, req: Message, msgType: string, content: Record<string, unknown>) => {
    send(ch, { identities: req.identities, header: newHeader(msgType, data.session), parent_header: req.header, metadata: {}, content });
  };
  const status = (req: Message, state: "busy" | "idle") => {
    send("iopub", { identities: [Buffer.from(`kernel.${data.session}.status`)], header: newHeader("status", data.session), parent_header: req.header, metadata: {}, content: { execution_state: state } });
  };

  // Heartbeat: echo, on this thread, whatever the main thread is doing.
  void (async () => {
    for await (const frames of hb) {
      try {
        await hb.send(frames as unknown as Buffer[]);
      } catch {
        // a REP socket closed mid-reply at shutdown
      }
    }
  })();

  let terminator: inspector.Session | undefined;
  const interrupt = () => {
    Atomics.add(shared, SHARED.INTERRUPTS, 1);
    if (Atomics.load(shared, SHARED.BUSY) !== 1) return;
    process.kill(process.pid, "SIGINT");
    if (!data.canTerminate) return;
    // Escalate if the main thread's tick stands still: it is stuck in code SIGINT cannot reach.
    const tickAtInterrupt = Atomics.load(shared, SHARED.TICK);
    let checks = 0;
    const watch = setInterval(() => {
      checks++;
      if (Atomics.load(shared, SHARED.BUSY) !== 1 || checks > 40) {
        clearInterval(watch);
        return;
      }
      if (checks >= 4 && Atomics.load(shared, SHARED.TICK) === tickAtInterrupt) {
        clearInterval(watch);
        if (Atomics.load(shared, SHARED.HOOKS_ENABLED) === 1) {
          log("cannot stop the running code: async hooks are enabled (by cell code), and terminating it would abort Node; restart the kernel");
          return;
        }
        try {
          if (!terminator) {
            terminator = new inspector.Session();
            terminator.connectToMainThread();
          }
          Atomics.add(shared, SHARED.TERMINATIONS, 1);
          terminator.post("Runtime.terminateExecution", (err) => {
            if (err) log(`terminateExecution failed: ${err.message}`);
          });
        } catch (e) {
          log(`cannot reach the main thread to stop it: ${(e as Error).message}`);
        }
      }
    }, 100);
  };

  let shuttingDown = false;
  let closing: Promise<void> | undefined;
  /** Flushes what is queued, closes every socket; once. */
  const closeWire = (): Promise<void> =>
    (closing ??= (async () => {
      await Promise.race([Promise.all(Object.values(queues).map((q) => q.drain())), new Promise((r) => setTimeout(r, 1000))]);
      for (const s of [shell, control, stdin, iopub, hb]) s.close();
      terminator?.disconnect();
    })());
  /** Tells the main thread to shut down; ends the process if it has not closed the wire in time. */
  const beginShutdown = (restart: boolean) => {
    shuttingDown = true;
    port.postMessage({ t: "shutdown", restart } satisfies FromIo);
    // A main thread stuck in a loop never answers: the process ends from here (the reply is out).
    setTimeout(() => {
      void closeWire().then(() => {
        log(`the main thread did not finish within ${SHUTDOWN_GRACE_MS} ms of the shutdown: ending the process`);
        process.kill(process.pid, "SIGKILL");
      });
    }, SHUTDOWN_GRACE_MS).unref();
  };

  const receive = async (sock: zmq.Router, ch: Channel) => {
    for await (const frames of sock) {
      if (shuttingDown) continue;
      let msg: Message;
      try {
        msg = parseMessage(frames as Buffer[], signer);
      } catch (e) {
        log(`dropped a message on ${ch}: ${e instanceof WireError ? e.message : String(e)}`);
        continue;
      }
      if (ch === "control" && msg.header.msg_type === "interrupt_request") {
        status(msg, "busy");
        reply("control", msg, "interrupt_reply", { status: "ok" });
        status(msg, "idle");
        interrupt();
        continue;
      }
      if ((ch === "control" || ch === "shell") && msg.header.msg_type === "shutdown_request") {
        const restart = (msg.content as { restart?: unknown }).restart === true;
        status(msg, "busy");
        reply(ch, msg, "shutdown_reply", { status: "ok", restart });
        status(msg, "idle");
        beginShutdown(restart);
        continue;
      }
      if (ch === "control" && msg.header.msg_type === "kernel_info_request") {
        status(msg, "busy");
        reply("control", msg, "kernel_info_reply", data.kernelInfo);
        status(msg, "idle");
        continue;
      }
      port.postMessage({ t: "msg", ch, m: msg } satisfies FromIo);
    }
  };
  void receive(shell, "shell");
  void receive(control, "control");
  void receive(stdin, "stdin");

  port.on("message", (msg: ToIo) => {
    if (msg.t === "send") {
      for (const { ch, m } of msg.batch) send(ch, m);
    } else if (msg.t === "close") {
      void closeWire().then(() => {
        port.postMessage({ t: "closed" } satisfies FromIo);
        port.close();
      });
    }
  });

  // The parent: gone when kill(pid, 0) fails, or when this process was handed to another parent.
  if (data.parentPid !== undefined && data.parentPid > 1) {
    const parent = data.parentPid;
    const ppidAtStart = process.ppid;
    const poll = setInterval(() => {
      let alive = true;
      try {
        process.kill(parent, 0);
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === "EPERM";
      }
      if (ppidAtStart === parent && process.ppid !== parent) alive = false;
      if (!alive && !shuttingDown) {
        clearInterval(poll);
        log(`the parent process ${parent} (JPY_PARENT_PID) is gone: shutting down`);
        beginShutdown(false);
      }
    }, PARENT_POLL_MS);
    poll.unref();
  }
  port.postMessage({ t: "ready", endpoints } satisfies FromIo);
}

if (parentPort) {
  main().catch((e: Error) => {
    parentPort!.postMessage({ t: "fatal", error: e.stack ?? e.message } satisfies FromIo);
  });
}
