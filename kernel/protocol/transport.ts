/**
 * The main thread's side of the wire: an interface the session sends through and receives from,
 * so that the session is tested without sockets, and its implementation over the I/O thread.
 */
import * as path from "path";
import { Worker } from "worker_threads";

import { ConnectionInfo } from "./connection";
import { FromIo, IoThreadData, OutgoingMessage, SHARED, ToIo } from "./io-thread";
import { kernelStderr } from "../log";
import { Channel, Message } from "./wire";

export interface Transport {
  send(channel: Channel, msg: OutgoingMessage): void;
  /** Hands queued messages over now (output must go out even while user code blocks the loop). */
  flush?(): void;
  onMessage(handler: (channel: Channel, msg: Message) => void): void;
  /**
   * Transports that answer shutdown_request themselves (the I/O thread does, so that a restart is
   * answered whatever the main thread is doing) call this afterwards; the session then cleans up
   * and closes. Without it the session answers shutdown_request itself.
   */
  onShutdown?(handler: (restart: boolean) => void): void;
  close(): Promise<void>;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** The transport over the I/O worker thread and its ZMQ sockets. */
export class ZmqTransport implements Transport {
  readonly shared: Int32Array;
  private readonly worker: Worker;
  private handler: (channel: Channel, msg: Message) => void = () => undefined;
  private shutdownHandler: (restart: boolean) => void = () => undefined;
  readonly ready: Promise<Record<string, string>>;

  constructor(connection: ConnectionInfo, session: string, kernelInfo: Record<string, unknown>, canTerminate: boolean) {
    const sab = new SharedArrayBuffer(16 * Int32Array.BYTES_PER_ELEMENT);
    this.shared = new Int32Array(sab);
    const parent = Number(process.env.JPY_PARENT_PID);
    const data: IoThreadData = { connection, shared: sab, session, kernelInfo, canTerminate, parentPid: Number.isInteger(parent) && parent > 1 ? parent : undefined };
    // The thread's stderr (its log) goes to the real stderr, not through the main thread's capture.
    this.worker = new Worker(path.join(__dirname, "io-thread.js"), { workerData: data, stdout: true, stderr: true });
    this.worker.stderr.on("data", kernelStderr);
    this.worker.stdout.on("data", kernelStderr);
    this.ready = new Promise((resolve, reject) => {
      this.worker.on("message", (m: FromIo) => {
        if (m.t === "ready") resolve(m.endpoints);
        else if (m.t === "fatal") reject(new Error(m.error));
        else if (m.t === "msg") {
          const msg = m.m;
          msg.identities = msg.identities.map(toBuffer);
          msg.buffers = msg.buffers.map(toBuffer);
          this.handler(m.ch, msg);
        } else if (m.t === "shutdown") {
          this.shutdownHandler(m.restart);
        }
      });
      this.worker.on("error", reject);
    });
  }

  private batch: { ch: Channel; m: OutgoingMessage }[] = [];
  private flushScheduled = false;

  /**
   * Queues a message for the I/O thread. Messages made in one turn of the event loop (busy,
   * execute_input; result, reply, idle) cross to the I/O thread in one postMessage: each crossing
   * wakes a thread, which on a small machine costs more than the work itself.
   */
  send(channel: Channel, msg: OutgoingMessage): void {
    this.batch.push({ ch: channel, m: msg });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Hands the queued messages to the I/O thread now (also before a blocking step). */
  flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.worker.postMessage({ t: "send", batch } satisfies ToIo);
  }

  onMessage(handler: (channel: Channel, msg: Message) => void): void {
    this.handler = handler;
  }

  onShutdown(handler: (restart: boolean) => void): void {
    this.shutdownHandler = handler;
  }

  async close(): Promise<void> {
    this.flush();
    const closed = new Promise<void>((resolve) => {
      this.worker.once("exit", () => resolve());
      this.worker.on("message", (m: FromIo) => m.t === "closed" && resolve());
    });
    this.worker.postMessage({ t: "close" } satisfies ToIo);
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
  }

  setBusy(busy: boolean): void {
    Atomics.store(this.shared, SHARED.BUSY, busy ? 1 : 0);
  }

  tick(): void {
    Atomics.add(this.shared, SHARED.TICK, 1);
  }

  /**
   * Marks termination unsafe once anything enables async hooks on this thread (createHook().enable(),
   * AsyncLocalStorage): Node then checks its async stack and aborts on the one a terminated callback
   * leaves behind.
   */
  watchAsyncHooks(): void {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const hooks = require("async_hooks") as typeof import("async_hooks");
    const mark = () => Atomics.store(this.shared, SHARED.HOOKS_ENABLED, 1);
    const createHook = hooks.createHook;
    hooks.createHook = ((callbacks: import("async_hooks").HookCallbacks) => {
      const hook = createHook(callbacks);
      const enable = hook.enable.bind(hook);
      hook.enable = () => (mark(), enable());
      return hook;
    }) as typeof hooks.createHook;
    const proto = hooks.AsyncLocalStorage.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const method of ["run", "enterWith"]) {
      const original = proto[method];
      proto[method] = function (this: unknown, ...args: unknown[]) {
        mark();
        return original.apply(this, args);
      };
    }
  }
}
