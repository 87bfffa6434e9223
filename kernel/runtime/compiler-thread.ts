/**
 * The compiler thread: turns cells into type-checked JavaScript (runtime/converter.ts) and answers
 * is_complete, off the main thread, so that loading TypeScript (about a second) happens beside the
 * kernel's start, and compiling never blocks the event loop that user code runs on.
 */
import { parentPort, workerData } from "worker_threads";

import { collector } from "../collect";
import { CellConverter } from "./converter";
import { isComplete } from "./is-complete";

export interface CompilerThreadData {
  prelude: string;
}

export type CompilerRequest =
  | { id: number; op: "convert"; prevDecl: string; src: string }
  | { id: number; op: "isComplete"; src: string }
  | { id: number; op: "ping" };

export type CompilerResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/**
 * A warm checker keeps every cell it checked reachable through its caches until it is replaced
 * (every WARM_USES cells, or when declarations change): after a replacement, collect once the heap
 * has grown by 16 MB (kernel/collect.ts).
 */
const collectIfGrown = collector(16);

function main(): void {
  const { prelude } = workerData as CompilerThreadData;
  const converter = new CellConverter(prelude);
  // Warm: parse the libraries and start a checker before the first cell arrives.
  converter.prepare("");
  const port = parentPort!;
  let preparing: NodeJS.Immediate | undefined;
  port.on("message", (req: CompilerRequest) => {
    let res: CompilerResponse;
    try {
      let result: unknown;
      switch (req.op) {
        case "convert": {
          const cell = converter.convert(req.prevDecl, req.src);
          result = cell;
          // Between cells: start the checker the next cell will need, once nothing is waiting.
          const next = cell.declOutput ?? req.prevDecl;
          if (preparing) clearImmediate(preparing);
          preparing = setImmediate(() => {
            preparing = undefined;
            if (converter.prepare(next)) collectIfGrown();
          });
          break;
        }
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
  try {
    main();
  } catch (e) {
    parentPort.postMessage({ id: 0, ok: false, error: (e as Error).stack ?? String(e) } satisfies CompilerResponse);
  }
}
