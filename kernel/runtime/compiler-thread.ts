/**
 * The compiler thread: tslab's converter (TypeScript -> JavaScript with cross-cell declarations,
 * type checking, completion, quick info) in a worker thread. Creating the converter takes seconds
 * (it loads and binds the TypeScript libs); here that happens beside the kernel's start instead of
 * before its first reply, and completion keeps working while a cell awaits.
 *
 * The prelude (declarations of the globals the kernel puts in cell scope) is prepended to the
 * previous cells' declarations on every call; tslab's converter drops non-local statements from
 * the declarations it returns, so the prelude is never duplicated.
 */
import { parentPort, workerData } from "worker_threads";

import { isComplete } from "./is-complete";

export interface CompilerThreadData {
  prelude: string;
}

export type CompilerRequest =
  | { id: number; op: "convert"; prevDecl: string; src: string }
  | { id: number; op: "complete"; prevDecl: string; src: string; pos: number }
  | { id: number; op: "inspect"; prevDecl: string; src: string; pos: number }
  | { id: number; op: "isComplete"; src: string }
  | { id: number; op: "ping" };

export type CompilerResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

async function main(): Promise<void> {
  const { prelude } = workerData as CompilerThreadData;
  // Required here, not at the top: only this thread loads TypeScript.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const converterModule = require("tslab/dist/converter") as typeof import("tslab/dist/converter");
  const converter = converterModule.createConverter({ isJS: false, isBrowser: false });
  const decl = (prevDecl: string) => `${prelude}\n${prevDecl}`;
  const port = parentPort!;
  port.on("message", (req: CompilerRequest) => {
    let res: CompilerResponse;
    try {
      let result: unknown;
      switch (req.op) {
        case "convert":
          result = converter.convert(decl(req.prevDecl), req.src);
          break;
        case "complete":
          result = converter.complete(decl(req.prevDecl), req.src, req.pos);
          // The raw TypeScript completion object does not survive structured cloning.
          delete (result as { original?: unknown }).original;
          break;
        case "inspect":
          result = converter.inspect(decl(req.prevDecl), req.src, req.pos) ?? null;
          break;
        case "isComplete":
          result = isComplete(req.src);
          break;
        case "ping":
          result = "pong";
          break;
      }
      res = { id: req.id, ok: true, result };
    } catch (e) {
      res = { id: req.id, ok: false, error: (e as Error).stack ?? String(e) };
    }
    port.postMessage(res);
  });
  port.postMessage({ id: 0, ok: true, result: "ready" } satisfies CompilerResponse);
}

if (parentPort) {
  main().catch((e: Error) => parentPort!.postMessage({ id: 0, ok: false, error: e.stack ?? e.message } satisfies CompilerResponse));
}
