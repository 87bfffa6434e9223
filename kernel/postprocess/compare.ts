/**
 * Parity of detections with a reference, by the rules of SPEC.md "Parity tests": per image the same
 * count; labels equal; the same order except that runs of equal scores are compared as sets;
 * scores |d| <= 1e-6; boxes |d| <= 1e-4 * max(1, |ref|).
 */
import { BoxSet } from "./dataset";
import { ImageDetections } from "./postprocessor";

export interface Tolerances {
  score: number;
  boxRelative: number;
}

export const PARITY_TOLERANCES: Tolerances = { score: 1e-6, boxRelative: 1e-4 };

export interface ImageParity {
  image: number;
  ok: boolean;
  count: number;
  expectedCount: number;
  maxScoreDiff: number;
  maxBoxDiff: number;
  /** The first differing detection, in words, when not ok. */
  mismatch?: string;
}

export interface ParityReport {
  ok: boolean;
  images: ImageParity[];
}

function boxClose(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, tol: number): number {
  let worst = 0;
  for (let j = 0; j < 4; j++) {
    const ref = b[bi * 4 + j];
    const d = Math.abs(a[ai * 4 + j] - ref);
    if (!(d <= tol * Math.max(1, Math.abs(ref)))) return Infinity;
    worst = Math.max(worst, d);
  }
  return worst;
}

const fmtBox = (b: ArrayLike<number>, i: number) =>
  `(${[0, 1, 2, 3].map((j) => Number(b[i * 4 + j]).toFixed(4)).join(", ")})`;

/** Compares one image's detections with the expected ones. */
export function compareImage(got: ImageDetections, exp: BoxSet, image: number, tol: Tolerances = PARITY_TOLERANCES): ImageParity {
  const expScores = exp.scores ?? new Float32Array(exp.labels.length);
  const r: ImageParity = { image, ok: true, count: got.count, expectedCount: exp.labels.length, maxScoreDiff: 0, maxBoxDiff: 0 };
  const fail = (msg: string) => {
    if (r.ok) r.mismatch = msg;
    r.ok = false;
  };
  if (got.count !== exp.labels.length) fail(`count ${got.count}, expected ${exp.labels.length}`);
  const n = Math.min(got.count, exp.labels.length);
  // Runs of equal expected scores [start, end) are compared as sets.
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && expScores[end] === expScores[start]) end++;
    const used = new Uint8Array(end - start);
    for (let i = start; i < end; i++) {
      let matched = -1;
      for (let j = start; j < end; j++) {
        if (used[j - start] || got.labels[i] !== exp.labels[j]) continue;
        if (Math.abs(got.scores[i] - expScores[j]) > tol.score) continue;
        if (boxClose(got.boxes, i, exp.boxes, j, tol.boxRelative) === Infinity) continue;
        matched = j;
        break;
      }
      if (matched < 0) {
        const j = i;
        fail(
          `detection ${i}: got label ${got.labels[i]} score ${got.scores[i].toPrecision(9)} box ${fmtBox(got.boxes, i)}, expected label ${exp.labels[j]} score ${Number(expScores[j]).toPrecision(9)} box ${fmtBox(exp.boxes, j)}` +
            (end - start > 1 ? ` (within a run of ${end - start} equal scores)` : ""),
        );
        continue;
      }
      used[matched - start] = 1;
      r.maxScoreDiff = Math.max(r.maxScoreDiff, Math.abs(got.scores[i] - expScores[matched]));
      r.maxBoxDiff = Math.max(r.maxBoxDiff, boxClose(got.boxes, i, exp.boxes, matched, tol.boxRelative));
    }
    start = end;
  }
  return r;
}

export function compareDetections(got: ImageDetections[], expected: BoxSet[], tol: Tolerances = PARITY_TOLERANCES): ParityReport {
  if (got.length !== expected.length) {
    return {
      ok: false,
      images: [{ image: 0, ok: false, count: got.length, expectedCount: expected.length, maxScoreDiff: NaN, maxBoxDiff: NaN, mismatch: `${got.length} images, expected ${expected.length}` }],
    };
  }
  const images = got.map((g, i) => compareImage(g, expected[i], i, tol));
  return { ok: images.every((i) => i.ok), images };
}
