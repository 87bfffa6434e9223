#!/usr/bin/env node
// A host model of the count path's span top-k (SpanTake in native/cuda/decode.cu) on the slices of
// bench/gpu's synthetic heads (800x1333, K = 80, seed 1): for every (image, level), the scores above
// 0.05, cut to their best `keep` (the select pass keeps about 3k of a large level, above its start
// estimate; 2,000 to 6,000 here), their score keys over 2048 buckets spanning the slice, and the
// bucket that holds the 1000th key (the boundary): its key count decides the path (more than 256: the
// radix path). Exact sigmoid bits are not needed for the bucket counts' order of magnitude.
//   node scripts/topk-span-model.js [bgMean = -6] [images = 8]      (after npm run build)
"use strict";
const path = require("path");
const dist = path.join(__dirname, "..", "dist", "kernel", "postprocess");
const { synthesize } = require(path.join(dist, "synth"));
const { fpnFeatureSizes } = require(path.join(dist, "heads"));

const bgMean = Number(process.argv[2] ?? -6), images = Number(process.argv[3] ?? 8);
const K = 80, A = 9, k = 1000, buckets = 2048, edgeKeys = 256;
const ds = synthesize({ images, size: [800, 1333], classes: K, bgMean, seed: 1 });
const cls = ds.cls_logits.data;
const levelAnchors = fpnFeatureSizes([800, 1344], 5).map(([h, w]) => h * w * A);
const perImage = cls.length / images;
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
const scoreKey = (s) => { f32[0] = s; return (0x7fffffff - u32[0]) >>> 0; };  // smaller for a higher score
let worst = 0, fallbacks = 0;
for (let n = 0; n < images; n++) {
  let first = n * perImage;
  levelAnchors.forEach((anchors, l) => {
    const scores = [];
    for (let i = first; i < first + anchors * K; i++) {
      const s = Math.fround(1 / (1 + Math.exp(-cls[i])));
      if (s > 0.05) scores.push(s);
    }
    first += anchors * K;
    scores.sort((a, b) => b - a);
    const cells = [2000, 3000, 4000, 6000].map((keep) => {
      const keys = scores.slice(0, keep).map(scoreKey);
      const lo = Math.min(...keys), hi = Math.max(...keys);
      const bits = hi > lo ? 32 - Math.clz32(hi - lo) : 0, shift = Math.max(0, bits - 11);
      const hist = new Array(buckets).fill(0);
      for (const u of keys) hist[Math.min((u - lo) >>> shift, buckets - 1)]++;
      let below = 0, edge = 0;
      if (keys.length > k) {
        for (let b = 0; b < buckets; b++) {
          if (below + hist[b] >= k) { edge = hist[b]; break; }
          below += hist[b];
        }
      }
      worst = Math.max(worst, edge);
      if (edge > edgeKeys) fallbacks++;
      return `${keys.length}: ${edge}`;
    });
    console.log(`image ${n} level ${l}: ${scores.length} above 0.05; keys kept: boundary bucket's keys  ${cells.join("  ")}`);
  });
}
console.log(`largest boundary bucket ${worst} keys; slices past ${edgeKeys} (radix path): ${fallbacks}`);
