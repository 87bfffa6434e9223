/**
 * stdout / stderr of cells as `stream` messages, in order with every other output.
 *
 * process.stdout.write and process.stderr.write are replaced, so console.log, console.error and
 * direct writes are all captured. Text is buffered per stream and flushed every 20 ms, when 64 KiB
 * are waiting, or before any other iopub message (so order is kept). A cell that prints more than
 * `maxBytesPerCell` has the rest dropped and counted, and one notice says how much: a 100 MB print
 * loop costs the kernel a bounded buffer, not 100 MB.
 */
import { Header } from "../protocol/wire";

export interface StreamSink {
  /** Publish one stream message with the given parent. */
  stream(name: "stdout" | "stderr", text: string, parent: Header | undefined): void;
}

type WriteFn = typeof process.stdout.write;

export class OutputCapture {
  readonly maxBytesPerCell: number;
  private pending: { name: "stdout" | "stderr"; text: string; parent: Header | undefined } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastFlush = 0;
  private cellBytes = 0;
  private droppedBytes = 0;
  private originals: { out: WriteFn; err: WriteFn } | undefined;

  constructor(
    private readonly sink: StreamSink,
    private readonly currentParent: () => Header | undefined,
    options: { maxBytesPerCell?: number } = {},
  ) {
    this.maxBytesPerCell = options.maxBytesPerCell ?? 8 * 1024 * 1024;
  }

  /** Starts capturing. Returns writers to the real streams, for the kernel's own logging. */
  install(): { stdout: (s: string) => void; stderr: (s: string) => void } {
    const out = process.stdout.write.bind(process.stdout) as WriteFn;
    const err = process.stderr.write.bind(process.stderr) as WriteFn;
    this.originals = { out, err };
    const capture = (name: "stdout" | "stderr"): WriteFn =>
      ((chunk: unknown, encodingOrCb?: unknown, cb?: unknown) => {
        const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encodingOrCb === "string" ? (encodingOrCb as BufferEncoding) : "utf8");
        this.write(name, text);
        const done = typeof encodingOrCb === "function" ? encodingOrCb : cb;
        if (typeof done === "function") queueMicrotask(() => (done as () => void)());
        return true;
      }) as WriteFn;
    process.stdout.write = capture("stdout");
    process.stderr.write = capture("stderr");
    return { stdout: (s) => void out(s), stderr: (s) => void err(s) };
  }

  uninstall(): void {
    if (!this.originals) return;
    this.flush();
    process.stdout.write = this.originals.out;
    process.stderr.write = this.originals.err;
    this.originals = undefined;
  }

  /** A new cell starts: its own output budget. */
  startCell(): void {
    this.flush();
    this.cellBytes = 0;
    this.droppedBytes = 0;
  }

  /** The cell ended: say how much output was dropped, if any. */
  endCell(): void {
    this.flush();
    if (this.droppedBytes > 0) {
      const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
      this.sink.stream(
        "stderr",
        `\n[retinanet-kernel: output limit of ${mb(this.maxBytesPerCell)} per cell reached; ${mb(this.droppedBytes)} more were not shown]\n`,
        this.currentParent(),
      );
      this.droppedBytes = 0;
    }
  }

  write(name: "stdout" | "stderr", text: string): void {
    if (text.length === 0) return;
    const parent = this.currentParent();
    if (this.cellBytes >= this.maxBytesPerCell) {
      this.droppedBytes += text.length;
      return;
    }
    let keep = text;
    if (this.cellBytes + text.length > this.maxBytesPerCell) {
      keep = text.slice(0, this.maxBytesPerCell - this.cellBytes);
      this.droppedBytes += text.length - keep.length;
    }
    this.cellBytes += keep.length;
    if (this.pending && (this.pending.name !== name || this.pending.parent?.msg_id !== parent?.msg_id)) this.flush();
    if (this.pending) this.pending.text += keep;
    else this.pending = { name, text: keep, parent };
    // Timers cannot fire while a cell's synchronous code runs: text after a quiet spell, and at
    // least every 50 ms of a burst, is sent from the write itself, so it shows up as it happens.
    if (this.pending.text.length >= 64 * 1024 || performance.now() - this.lastFlush >= 50) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), 20);
      this.timer.unref();
    }
  }

  /** Sends what is buffered now (called before every other iopub message). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const p = this.pending;
    this.pending = undefined;
    this.lastFlush = performance.now();
    if (p && p.text.length > 0) this.sink.stream(p.name, p.text, p.parent);
  }
}
