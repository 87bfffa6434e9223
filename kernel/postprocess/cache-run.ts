/**
 * Running a Postprocessor over a candidate cache: the images in batches of one shape each, the
 * results joined into one padded result, with progress and interrupt between batches.
 */
import { CandidateCache, cacheBatches, checkConfigForCache } from "./cache";
import { PaddedDetections } from "./reference";
import { Postprocessor, PostprocessResult, toResult } from "./postprocessor";

export interface CacheRunOptions {
  /** Images [begin, end) of the cache; default: all. */
  begin?: number;
  end?: number;
  /** Images per native call (default 256). */
  batch?: number;
  progress?: (done: number, total: number) => void;
  stop?: { readonly stopped: boolean };
}

/** Detections of a cache's images: the stages after selection only, exactly as on the heads. */
export async function runCache(pp: Postprocessor, cache: CandidateCache, options: CacheRunOptions = {}): Promise<PostprocessResult & { interrupted: boolean }> {
  checkConfigForCache(pp.config, cache);
  const begin = options.begin ?? 0;
  const end = options.end ?? cache.meta.images;
  const D = pp.config.detections_per_img;
  const N = end - begin;
  const out: PaddedDetections = { maxDetections: D, counts: new Int32Array(N), boxes: new Float32Array(N * D * 4), scores: new Float32Array(N * D), labels: new Int32Array(N * D) };
  const start = performance.now();
  let compute = 0;
  let done = 0;
  let interrupted = false;
  for (const b of cacheBatches(cache, begin, end, options.batch ?? 256)) {
    if (options.stop?.stopped) {
      interrupted = true;
      break;
    }
    const r = await pp.run(b);
    const at = done;
    out.counts.set(r.padded.counts, at);
    out.boxes.set(r.padded.boxes, at * D * 4);
    out.scores.set(r.padded.scores, at * D);
    out.labels.set(r.padded.labels, at * D);
    compute += r.timings.computeMs;
    done += b.shapes.batch;
    options.progress?.(done, N);
  }
  const ms = performance.now() - start;
  return { ...toResult(pp.backend, out, { totalMs: ms, uploadMs: 0, computeMs: compute, downloadMs: 0, graphReplayed: false }), interrupted };
}
