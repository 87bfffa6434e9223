/** The main thread's client of the compiler thread: promises for convert / complete / inspect / isComplete. */
import * as path from "path";
import { Worker } from "worker_threads";

import type { CompilerRequest, CompilerResponse, CompilerThreadData } from "./compiler-thread";
import type { IsCompleteResult } from "./is-complete";
import { kernelStderr } from "../session/log";

/** What tslab's converter returns for one cell (kernel-relevant fields). */
export interface ConvertResult {
  output?: string;
  declOutput?: string;
  diagnostics: Diagnostic[];
  lastExpressionVar?: string;
  hasToplevelAwait?: boolean;
}

export interface Diagnostic {
  start: { offset: number; line: number; character: number };
  end: { offset: number; line: number; character: number };
  messageText: string;
  category: number;
  code: number;
  fileName?: string;
}

export interface CompletionInfo {
  start: number;
  end: number;
  candidates: string[];
}

export interface QuickInfo {
  kind: string;
  textSpan: { start: number; length: number };
  displayParts?: { text: string; kind: string }[];
  documentation?: { text: string; kind: string }[];
  tags?: { name: string; text?: { text: string }[] }[];
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export class CompilerClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Resolves once the TypeScript converter exists (seconds after start). */
  readonly ready: Promise<void>;

  constructor(prelude: string) {
    const data: CompilerThreadData = { prelude };
    this.worker = new Worker(path.join(__dirname, "compiler-thread.js"), { workerData: data, stdout: true, stderr: true });
    this.worker.stderr.on("data", kernelStderr);
    this.worker.stdout.on("data", kernelStderr);
    // The kernel must be able to exit while this thread idles.
    this.worker.unref();
    this.ready = new Promise((resolve, reject) => {
      this.pending.set(0, { resolve: () => resolve(), reject });
    });
    this.ready.catch(() => undefined);
    this.worker.on("message", (res: CompilerResponse) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve(res.result);
      else p.reject(new Error(`the TypeScript compiler failed: ${res.error}`));
    });
    this.worker.on("error", (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  private call<T>(req: DistributiveOmit<CompilerRequest, "id">): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...req, id } as CompilerRequest);
    });
  }

  convert(prevDecl: string, src: string): Promise<ConvertResult> {
    return this.call({ op: "convert", prevDecl, src });
  }

  complete(prevDecl: string, src: string, pos: number): Promise<CompletionInfo> {
    return this.call({ op: "complete", prevDecl, src, pos });
  }

  inspect(prevDecl: string, src: string, pos: number): Promise<QuickInfo | null> {
    return this.call({ op: "inspect", prevDecl, src, pos });
  }

  isComplete(src: string): Promise<IsCompleteResult> {
    return this.call({ op: "isComplete", src });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
