/** %synth: synthetic head outputs with ground truth. */
import { modulePath } from "../../runtime/prelude";
import { checkOutputPath } from "../../files";
import { Magic } from "../registry";
import { wf, showDatasets, stopSignal, WorkflowArgError } from "./workflow-common";

export const synth: Magic = {
  name: "synth",
  kind: "line",
  summary: "synthetic heads with ground truth: %synth NAME --images 4 --size 800x1333 --classes 80 --density 0.02 --seed 1 [--cache DIR --images 5000]",
  help: "Background logits ~ N(mu, 1.5) with mu set by --density (share of scores above 0.05) or --bg-mean; a few objects per image whose anchors get high logits and exact deltas. Uses the session preset's anchors.\nWith --cache DIR, a validation set of any size is written straight to a candidate cache (bounds --min-score, --max-topk; COCO ground truth in DIR/annotations.json), one image at a time, and loaded.",
  args: {
    positionals: [{ name: "NAME", type: "string", help: "dataset name", required: true }],
    options: [
      { name: "images", type: "int", help: "images in the batch (up to 64; with --cache, any number)", default: 2, min: 1, max: 10000000 },
      { name: "size", type: "size", help: "HxW of every image", default: [800, 1333] },
      { name: "classes", type: "int", help: "K", default: 80, min: 1, max: 10000 },
      { name: "density", type: "number", help: "share of background scores above 0.05", min: 0, max: 1 },
      { name: "bg-mean", type: "number", help: "background logit mean (instead of --density)" },
      { name: "objects", type: "int", help: "objects per image", default: 8, min: 0, max: 1000 },
      { name: "seed", type: "int", help: "random seed", default: 1, min: 0 },
      { name: "fp16", type: "bool", help: "store the heads as fp16" },
      { name: "cache", type: "string", help: "write a candidate cache folder instead of heads in memory" },
      { name: "min-score", type: "number", help: "with --cache: lowest score_thresh the cache serves", default: 0.05, min: 0, max: 1 },
      { name: "max-topk", type: "int", help: "with --cache: largest topk_candidates the cache serves", default: 1000, min: 1, max: 100000 },
    ],
  },
  async run(ctx, args) {
    const v = args.values;
    // What both forms take: the size of the set and how its heads are drawn.
    const common = {
      size: v.size as [number, number],
      classes: v.classes as number,
      ...(v.density !== undefined ? { density: v.density as number } : {}),
      ...(v.bgMean !== undefined ? { bgMean: v.bgMean as number } : {}),
      objects: v.objects as number,
      seed: v.seed as number,
    };
    if (v.cache !== undefined) {
      if (v.fp16) throw new WorkflowArgError("Expected --fp16 without --cache (a cache stores the values widened to f32) but received both");
      checkOutputPath(String(v.cache), "--cache", { folder: true });
      const total = v.images as number;
      const ds = wf().workbench.synthCache(
        String(v.NAME),
        String(v.cache),
        { ...common, images: total, minScore: v.minScore as number, maxTopk: v.maxTopk as number },
        ctx.display.progress(total, { label: "images" }),
        stopSignal(ctx),
      );
      ctx.executor.bind(ds.name, ds, `import("${modulePath("postprocess/dataset")}").CacheDataset`);
      showDatasets(ctx, [ds.name]);
      return {};
    }
    if ((v.images as number) > 64) throw new WorkflowArgError(`Expected --images <= 64 for heads in memory (an 800x1333 image with K = 80 is 68 MB) but received ${v.images}: add --cache DIR for a validation set of any size`);
    const ds = wf().workbench.synth(String(v.NAME), { ...common, images: v.images as number, fp16: !!v.fp16 });
    ctx.executor.bind(ds.name, ds, `import("${modulePath("postprocess/api")}").Dataset`);
    showDatasets(ctx, [ds.name]);
    return {};
  },
};
