/** A candidate cache written from normalised heads in memory (one batch) and opened. */
import { CacheBounds, CacheWriter, CandidateCache, openCache } from "../kernel/postprocess/cache";
import { NormalizedHeads } from "../kernel/postprocess/heads";
import { PostprocessConfig } from "../kernel/postprocess/presets";

export function buildCacheFromHeads(dir: string, heads: NormalizedHeads, config: PostprocessConfig, bounds: CacheBounds): CandidateCache {
  const w = new CacheWriter(dir, config, bounds, "test");
  w.addBatch(heads);
  w.finish();
  return openCache(dir);
}
