/**
 * Full garbage collections at quiet moments, for the threads of a long session. V8 leaves a full
 * (mark-compact) collection until the old generation reaches a limit that rises as the heap grows;
 * the compiler thread's replaced type checkers (each with every cell it checked) live in that
 * generation, so a session of thousands of cells climbs by hundreds of MB of garbage before it is
 * collected, and the memory is not handed back.
 *
 * `collector(mb)` returns a function to call when the thread is idle (after a reply has gone out):
 * it collects only when the heap in use has grown by `mb` since the last collection.
 * The collector is V8's `gc`, reached with --expose-gc set at run time for contexts made after it.
 */
import * as v8 from "v8";
import * as vm from "vm";

const gc: (() => void) | undefined = (() => {
  try {
    v8.setFlagsFromString("--expose-gc");
    return vm.runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
})();

export function collector(mb: number): () => boolean {
  let base = v8.getHeapStatistics().used_heap_size;
  return () => {
    if (!gc || v8.getHeapStatistics().used_heap_size < base + mb * 1048576) return false;
    gc();
    base = v8.getHeapStatistics().used_heap_size;
    return true;
  };
}
