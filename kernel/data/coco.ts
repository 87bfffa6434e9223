/**
 * COCO files: annotation files (`images`, `annotations`, `categories`) and results files
 * (`[{image_id, category_id, bbox, score}]`), read by a streaming scanner into columns (typed
 * arrays), keeping only what box evaluation and the notebook need: segmentation polygons, captions
 * and licenses are skipped unread. Everything is checked on the way in, and a bad entry is an error
 * that names the file, the entry (its index and id) and what was expected; nothing half-loaded is
 * returned. Results are written whole or not at all (a temporary file renamed into place).
 */
import * as fs from "fs";
import * as path from "path";

import { writeAll, writeFileWhole, writeWhole } from "../files";
import { JsonScanError, JsonScanner, JsonValue } from "./json-scan";

export class CocoFormatError extends Error {
  readonly code = "ERR_RK_COCO";
}

export interface CocoImage {
  id: number;
  width?: number;
  height?: number;
  file_name?: string;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
}

/** Boxes as columns: entry i of every array is box i, in file order; bbox [x, y, w, h] as 4 columns. */
export interface CocoBoxColumns {
  count: number;
  imageId: Float64Array;
  categoryId: Float64Array;
  x: Float64Array;
  y: Float64Array;
  w: Float64Array;
  h: Float64Array;
}

/** Ground truth as columns (annotation i in file order). */
export interface CocoGroundTruth extends CocoBoxColumns {
  file?: string;
  images: CocoImage[];
  categories: CocoCategory[];
  id: Float64Array;
  /** The annotation's `area` (the segmentation's, in COCO), which the area ranges use. */
  area: Float64Array;
  iscrowd: Uint8Array;
}

/** Detections as columns, in results-file order (a detection's id is its index + 1, as pycocotools' loadRes numbers them). */
export interface CocoDetections extends CocoBoxColumns {
  score: Float64Array;
}

/** A growable set of Float64 columns. */
class Columns<K extends string> {
  n = 0;
  cap = 1024;
  cols: Record<K, Float64Array>;
  constructor(private readonly names: readonly K[]) {
    this.cols = Object.fromEntries(names.map((k) => [k, new Float64Array(this.cap)])) as Record<K, Float64Array>;
  }
  push(values: Record<K, number>): void {
    if (this.n === this.cap) {
      this.cap *= 2;
      for (const k of this.names) {
        const a = new Float64Array(this.cap);
        a.set(this.cols[k]);
        this.cols[k] = a;
      }
    }
    for (const k of this.names) this.cols[k][this.n] = values[k];
    this.n++;
  }
  take(): Record<K, Float64Array> {
    return Object.fromEntries(this.names.map((k) => [k, this.cols[k].slice(0, this.n)])) as Record<K, Float64Array>;
  }
}

const GT_COLUMNS = ["id", "imageId", "categoryId", "x", "y", "w", "h", "area", "iscrowd"] as const;
const DT_COLUMNS = ["imageId", "categoryId", "x", "y", "w", "h", "score"] as const;

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Reads a COCO box: [x, y, w, h] with finite numbers and w, h >= 0. */
function readBox(v: JsonValue | undefined, where: () => string): [number, number, number, number] {
  if (!Array.isArray(v) || v.length !== 4 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
    throw new CocoFormatError(`${where()}: expected bbox to be [x, y, w, h] (4 finite numbers) but received ${show(v)}`);
  }
  const b = v as [number, number, number, number];
  if (b[2] < 0 || b[3] < 0) throw new CocoFormatError(`${where()}: expected bbox width and height >= 0 but received ${show(v)}`);
  return b;
}

function readId(v: JsonValue | undefined, name: string, where: () => string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new CocoFormatError(`${where()}: expected ${name} to be a number but received ${show(v)}`);
  return v;
}

/** Reads the members of one object, materializing only `wanted` keys. */
function readObject(s: JsonScanner, wanted: ReadonlySet<string>, what: string): Record<string, JsonValue> {
  const o: Record<string, JsonValue> = {};
  if (s.beginObject(what)) {
    do {
      const k = s.key();
      if (wanted.has(k)) o[k] = s.value();
      else s.skip();
    } while (s.more(0x7d));
  }
  return o;
}

const IMAGE_KEYS = new Set(["id", "width", "height", "file_name"]);
const ANN_KEYS = new Set(["id", "image_id", "category_id", "bbox", "area", "iscrowd"]);
const CAT_KEYS = new Set(["id", "name", "supercategory"]);
const RES_KEY_BYTES = ["image_id", "category_id", "bbox", "score"].map((k) => Buffer.from(k, "latin1"));

function withScanner<T>(file: string, fn: (s: JsonScanner) => T): T {
  if (!fs.existsSync(file)) throw new CocoFormatError(`Expected a COCO JSON file at ${file} but there is none`);
  const s = new JsonScanner(file);
  try {
    const out = fn(s);
    s.finish();
    return out;
  } catch (e) {
    if (e instanceof JsonScanError) throw new CocoFormatError(e.message);
    throw e;
  } finally {
    s.close();
  }
}

/** Reads a COCO annotation file (instances_val2017.json and the like). */
export function readCocoAnnotations(file: string): CocoGroundTruth {
  const name = path.basename(file);
  return withScanner(file, (s) => {
    const images: CocoImage[] = [];
    const categories: CocoCategory[] = [];
    const anns = new Columns(GT_COLUMNS);
    let sawImages = false;
    let sawAnnotations = false;
    if (s.beginObject(`the top level of a COCO annotation file ${name}`)) {
      do {
        const key = s.key();
        if (key === "images") {
          sawImages = true;
          if (s.beginArray("images")) {
            do {
              const i = images.length;
              const o = readObject(s, IMAGE_KEYS, `images[${i}]`);
              const where = () => `${name}: images[${i}]`;
              const img: CocoImage = { id: readId(o.id, "id", where) };
              if (typeof o.width === "number") img.width = o.width;
              if (typeof o.height === "number") img.height = o.height;
              if (typeof o.file_name === "string") img.file_name = o.file_name;
              images.push(img);
            } while (s.more(0x5d));
          }
        } else if (key === "annotations") {
          sawAnnotations = true;
          if (s.beginArray("annotations")) {
            do {
              const i = anns.n;
              const o = readObject(s, ANN_KEYS, `annotations[${i}]`);
              const where = () => `${name}: annotations[${i}]${typeof o.id === "number" ? ` (id ${o.id})` : ""}`;
              const [x, y, w, h] = readBox(o.bbox, where);
              const area = o.area;
              if (typeof area !== "number" || !Number.isFinite(area) || area < 0) throw new CocoFormatError(`${where()}: expected area to be a number >= 0 (COCO's area of the segmentation, which the small/medium/large ranges use) but received ${show(area)}`);
              const crowd = o.iscrowd ?? 0;
              if (crowd !== 0 && crowd !== 1 && crowd !== true && crowd !== false) throw new CocoFormatError(`${where()}: expected iscrowd to be 0 or 1 but received ${show(crowd)}`);
              anns.push({
                id: readId(o.id, "id", where),
                imageId: readId(o.image_id, "image_id", where),
                categoryId: readId(o.category_id, "category_id", where),
                x,
                y,
                w,
                h,
                area,
                iscrowd: crowd === 1 || crowd === true ? 1 : 0,
              });
            } while (s.more(0x5d));
          }
        } else if (key === "categories") {
          if (s.beginArray("categories")) {
            do {
              const i = categories.length;
              const o = readObject(s, CAT_KEYS, `categories[${i}]`);
              const where = () => `${name}: categories[${i}]`;
              const c: CocoCategory = { id: readId(o.id, "id", where), name: typeof o.name === "string" ? o.name : String(o.id) };
              if (typeof o.supercategory === "string") c.supercategory = o.supercategory;
              categories.push(c);
            } while (s.more(0x5d));
          }
        } else {
          s.skip();
        }
      } while (s.more(0x7d));
    }
    if (!sawImages) throw new CocoFormatError(`${name}: expected an "images" list in a COCO annotation file but found none`);
    if (!sawAnnotations) throw new CocoFormatError(`${name}: expected an "annotations" list in a COCO annotation file but found none`);
    const cols = anns.take();
    const gt: CocoGroundTruth = {
      file,
      images,
      categories,
      count: anns.n,
      id: cols.id,
      imageId: cols.imageId,
      categoryId: cols.categoryId,
      x: cols.x,
      y: cols.y,
      w: cols.w,
      h: cols.h,
      area: cols.area,
      iscrowd: Uint8Array.from(cols.iscrowd),
    };
    checkGroundTruth(gt, name);
    return gt;
  });
}

/** Image and category ids of annotations exist; ids are unique. */
export function checkGroundTruth(gt: CocoGroundTruth, name = "ground truth"): void {
  const imgs = new Set<number>();
  for (const [i, im] of gt.images.entries()) {
    if (imgs.has(im.id)) throw new CocoFormatError(`${name}: images[${i}] repeats image id ${im.id}`);
    imgs.add(im.id);
  }
  const cats = new Set<number>();
  for (const [i, c] of gt.categories.entries()) {
    if (cats.has(c.id)) throw new CocoFormatError(`${name}: categories[${i}] repeats category id ${c.id}`);
    cats.add(c.id);
  }
  for (let i = 0; i < gt.count; i++) {
    if (!imgs.has(gt.imageId[i])) throw new CocoFormatError(`${name}: annotations[${i}] (id ${gt.id[i]}) has image_id ${gt.imageId[i]}, which is not in "images"`);
    if (!cats.has(gt.categoryId[i])) throw new CocoFormatError(`${name}: annotations[${i}] (id ${gt.id[i]}) has category_id ${gt.categoryId[i]}, which is not in "categories"`);
  }
}

/**
 * Reads a COCO results file: a list of {image_id, category_id, bbox, score}. With `gt`, every
 * image and category id must be one of its own (an error names the first that is not).
 */
export function readCocoResults(file: string, gt?: CocoGroundTruth): CocoDetections {
  const name = path.basename(file);
  const dets = withScanner(file, (s) => {
    const cols = new Columns(DT_COLUMNS);
    const box = new Float64Array(4);
    const row = { imageId: NaN, categoryId: NaN, x: 0, y: 0, w: 0, h: 0, score: NaN };
    if (s.beginArray(`a COCO results file ${name} (a list of {image_id, category_id, bbox, score})`)) {
      do {
        const i = cols.n;
        const where = () => `${name}: results[${i}]`;
        // The members this needs, read without materializing objects (500,000 of them in COCO val).
        let imageId: JsonValue | undefined, categoryId: JsonValue | undefined, score: JsonValue | undefined, bbox: JsonValue | undefined;
        let haveBox = false;
        if (s.beginObject(`results[${i}]`)) {
          do {
            const k = s.keyIndex(RES_KEY_BYTES);
            if (k === 0) imageId = s.value();
            else if (k === 1) categoryId = s.value();
            else if (k === 2) {
              haveBox = s.numbersInto(box, 4);
              bbox = haveBox ? undefined : s.value();
            } else if (k === 3) score = s.value();
            else s.skip();
          } while (s.more(0x7d));
        }
        const ok = haveBox && Number.isFinite(box[0] + box[1] + box[2] + box[3]) && box[2] >= 0 && box[3] >= 0;
        const [x, y, w, h] = ok ? (box as unknown as [number, number, number, number]) : haveBox ? readBox(Array.from(box), where) : readBox(bbox, where);
        if (typeof score !== "number" || !Number.isFinite(score)) throw new CocoFormatError(`${where()}: expected score to be a finite number but received ${show(score)}`);
        row.imageId = readId(imageId, "image_id", where);
        row.categoryId = readId(categoryId, "category_id", where);
        row.x = x;
        row.y = y;
        row.w = w;
        row.h = h;
        row.score = score;
        cols.push(row);
      } while (s.more(0x5d));
    }
    const c = cols.take();
    return { count: cols.n, ...c } satisfies CocoDetections;
  });
  if (gt) checkDetections(dets, gt, name);
  return dets;
}

/** Every detection's image and category are in the ground truth. */
export function checkDetections(dt: CocoDetections, gt: CocoGroundTruth, name = "results"): void {
  const imgs = new Set(gt.images.map((i) => i.id));
  const cats = new Set(gt.categories.map((c) => c.id));
  for (let i = 0; i < dt.count; i++) {
    if (!imgs.has(dt.imageId[i])) throw new CocoFormatError(`${name}: results[${i}] has image_id ${dt.imageId[i]}, which is not an image of the annotations${gt.file ? ` (${path.basename(gt.file)})` : ""}`);
    if (!cats.has(dt.categoryId[i])) throw new CocoFormatError(`${name}: results[${i}] has category_id ${dt.categoryId[i]}, which is not a category of the annotations${gt.file ? ` (${path.basename(gt.file)})` : ""}`);
  }
}

/** Writes detections as a COCO results file, whole or not at all (`what` names the path's option in errors). */
export function writeCocoResults(file: string, dt: CocoDetections, what = "the results file"): void {
  writeWhole(file, what, (fd) => {
    let chunk = "[";
    for (let i = 0; i < dt.count; i++) {
      chunk += `${i ? "," : ""}\n{"image_id":${dt.imageId[i]},"category_id":${dt.categoryId[i]},"bbox":[${dt.x[i]},${dt.y[i]},${dt.w[i]},${dt.h[i]}],"score":${dt.score[i]}}`;
      if (chunk.length > 1 << 20) {
        writeAll(fd, chunk);
        chunk = "";
      }
    }
    writeAll(fd, `${chunk}\n]\n`);
  });
}

/** Writes a COCO annotation file (the parts this project reads), whole or not at all. */
export function writeCocoAnnotations(file: string, gt: CocoGroundTruth, what = "the annotation file"): void {
  const anns: string[] = [];
  for (let i = 0; i < gt.count; i++) {
    anns.push(`{"id":${gt.id[i]},"image_id":${gt.imageId[i]},"category_id":${gt.categoryId[i]},"bbox":[${gt.x[i]},${gt.y[i]},${gt.w[i]},${gt.h[i]}],"area":${gt.area[i]},"iscrowd":${gt.iscrowd[i]}}`);
  }
  writeFileWhole(file, what, `{"images":${JSON.stringify(gt.images)},\n"categories":${JSON.stringify(gt.categories)},\n"annotations":[\n${anns.join(",\n")}\n]}\n`);
}
