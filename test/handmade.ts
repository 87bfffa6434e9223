/** Tiny scenes for tests derived by hand: one image of concatenated heads, a few cells set. */
import * as assert from "assert";

import { HeadOutputs } from "../kernel/postprocess/heads";
import { ndarray } from "../kernel/postprocess/ndarray";
import { sigmoidF32 } from "../kernel/postprocess/reference";

const f = Math.fround;

export interface Cell {
  level: number;
  y: number;
  x: number;
  a: number;
  label: number;
  logit: number;
  deltas?: [number, number, number, number];
}

/** Concatenated heads for one image: every logit -20 except the given cells. */
export function scene(featureSizes: [number, number][], K: number, image: [number, number], cells: Cell[], anchors?: number[][]): HeadOutputs {
  const A = 9;
  const offsets = featureSizes.map((_, l) => featureSizes.slice(0, l).reduce((s, [h, w]) => s + h * w * A, 0));
  const total = featureSizes.reduce((s, [h, w]) => s + h * w * A, 0);
  const cls = new Float32Array(total * K).fill(-20);
  const box = new Float32Array(total * 4);
  for (const c of cells) {
    const row = offsets[c.level] + (c.y * featureSizes[c.level][1] + c.x) * A + c.a; // (y*W + x)*A + a
    cls[row * K + c.label] = c.logit;
    if (c.deltas) box.set(c.deltas, row * 4);
  }
  const heads: HeadOutputs = {
    cls_logits: ndarray("float32", [1, total, K], cls),
    bbox_regression: ndarray("float32", [1, total, 4], box),
    image_sizes: [image],
    feature_sizes: featureSizes,
  };
  if (anchors) {
    const a = new Float32Array(total * 4);
    // given anchors: only the listed rows matter; the rest are far away
    for (let r = 0; r < total; r++) a.set([-1000, -1000, -990, -990], r * 4);
    for (const [row, ...b] of anchors) a.set(b, (offsets[0] + row) * 4);
    heads.anchors = ndarray("float32", [total, 4], a);
  }
  return heads;
}

/** A logit whose f32 sigmoid equals f32(t) exactly, and the next f32 above it (which must pass). */
export function thresholdTie(t: number): { at: number; above: number } {
  const target = f(t);
  let x = f(Math.log(t / (1 - t)));
  const buf = new Float32Array(1);
  const i32 = new Int32Array(buf.buffer);
  const step = (v: number, dir: number) => {
    buf[0] = v;
    i32[0] += v < 0 ? -dir : dir;
    return buf[0];
  };
  for (let n = 0; n < 64 && sigmoidF32(x) > target; n++) x = step(x, -1);
  for (let n = 0; n < 64 && sigmoidF32(x) < target; n++) x = step(x, +1);
  assert.strictEqual(sigmoidF32(x), target, "a logit with sigmoid exactly at the threshold exists");
  let above = x;
  while (sigmoidF32(above) <= target) above = step(above, +1);
  return { at: x, above };
}

