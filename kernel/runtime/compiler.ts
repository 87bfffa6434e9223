/**
 * The main thread's client of the compiler thread (cells, is_complete) and the language thread
 * (completion, inspection): requests as promises, matched by id.
 */
import * as path from "path";
import { Worker } from "worker_threads";

import { kernelStderr } from "../log";
import type { CompilerRequest, CompilerThreadData } from "./compiler-thread";
import type { ConvertedCell } from "./converter";
import type { IsCompleteResult } from "./is-complete";
import type { LanguageRequest, LanguageThreadData } from "./language-thread";

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

/** One worker thread answering requests by id; id 0 is its "ready" message. */
class ThreadClient<Req extends { id: number }> {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  readonly ready: Promise<void>;

  constructor(file: string, data: unknown, what: string) {
    // A larger young generation: each cell's program is short-lived garbage; fewer scavenges.
    this.worker = new Worker(path.join(__dirname, file), { workerData: data, stdout: true, stderr: true, resourceLimits: { maxYoungGenerationSizeMb: 64 } });
    this.worker.stderr.on("data", kernelStderr);
    this.worker.stdout.on("data", kernelStderr);
    this.worker.unref();
    this.ready = new Promise((resolve, reject) => this.pending.set(0, { resolve: () => resolve(), reject }));
    this.ready.catch(() => undefined);
    this.worker.on("message", (res: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve(res.result);
      else p.reject(new Error(`the ${what} failed: ${res.error}`));
    });
    this.worker.on("error", (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  call<T>(req: DistributiveOmit<Req, "id">): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...req, id });
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export class CompilerClient {
  private readonly compiler: ThreadClient<CompilerRequest>;
  private language: ThreadClient<LanguageRequest> | undefined;
  /** Resolves once cells can be compiled (about a second after start). */
  readonly ready: Promise<void>;

  constructor(private readonly prelude: string) {
    this.compiler = new ThreadClient<CompilerRequest>("compiler-thread.js", { prelude } satisfies CompilerThreadData, "TypeScript compiler");
    this.ready = this.compiler.ready;
    // The language service starts once the compiler is up, so the two do not compete at start.
    this.ready.then(
      () => this.languageThread(),
      () => undefined,
    );
  }

  private languageThread(): ThreadClient<LanguageRequest> {
    this.language ??= new ThreadClient<LanguageRequest>("language-thread.js", { prelude: this.prelude } satisfies LanguageThreadData, "TypeScript language service");
    return this.language;
  }

  convert(prevDecl: string, src: string): Promise<ConvertedCell> {
    return this.compiler.call({ op: "convert", prevDecl, src });
  }

  isComplete(src: string): Promise<IsCompleteResult> {
    return this.compiler.call({ op: "isComplete", src });
  }

  async complete(prevDecl: string, src: string, pos: number): Promise<CompletionInfo> {
    const lang = this.languageThread();
    await lang.ready;
    return lang.call({ op: "complete", prevDecl, src, pos });
  }

  async inspect(prevDecl: string, src: string, pos: number): Promise<QuickInfo | null> {
    const lang = this.languageThread();
    await lang.ready;
    return lang.call({ op: "inspect", prevDecl, src, pos });
  }

  async close(): Promise<void> {
    await Promise.all([this.compiler.terminate(), this.language?.terminate()]);
  }
}
