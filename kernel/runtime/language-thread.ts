/**
 * The language thread: tslab's converter answering completion and quick info (inspect) from its
 * language service, against the same declarations the cells were compiled with. Its own thread,
 * because creating it takes seconds and must not hold up cells or the first reply.
 */
import { parentPort, workerData } from "worker_threads";

export interface LanguageThreadData {
  prelude: string;
}

export type LanguageRequest =
  | { id: number; op: "complete"; prevDecl: string; src: string; pos: number }
  | { id: number; op: "inspect"; prevDecl: string; src: string; pos: number };

export type LanguageResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

function main(): void {
  const { prelude } = workerData as LanguageThreadData;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createConverter } = require("tslab/dist/converter") as typeof import("tslab/dist/converter");
  const converter = createConverter({ isJS: false, isBrowser: false });
  const decl = (prevDecl: string) => `${prelude}\n${prevDecl}`;
  const port = parentPort!;
  port.on("message", (req: LanguageRequest) => {
    let res: LanguageResponse;
    try {
      let result: unknown;
      if (req.op === "complete") {
        const info = converter.complete(decl(req.prevDecl), req.src, req.pos);
        result = { start: info.start, end: info.end, candidates: info.candidates };
      } else {
        result = converter.inspect(decl(req.prevDecl), req.src, req.pos) ?? null;
      }
      res = { id: req.id, ok: true, result };
    } catch (e) {
      res = { id: req.id, ok: false, error: (e as Error).stack ?? String(e) };
    }
    port.postMessage(res);
  });
  port.postMessage({ id: 0, ok: true, result: "ready" } satisfies LanguageResponse);
}

if (parentPort) {
  try {
    main();
  } catch (e) {
    parentPort.postMessage({ id: 0, ok: false, error: (e as Error).stack ?? String(e) } satisfies LanguageResponse);
  }
}
