/** %load: head outputs from a file, with COCO ground truth bound by image id. */
import { modulePath } from "../../runtime/prelude";
import { Magic } from "../registry";
import { showDatasets, stopSignal, wf } from "./workflow-common";

export const load: Magic = {
  name: "load",
  kind: "line",
  summary: "load head outputs: %load NAME PATH [--annotations GT.json] (.npz in the golden format, a folder of .npy, a folder of shards, or a candidate cache)",
  help: "The dataset gets NAME in %datasets and in --data of the other magics, and is bound in the cell scope as NAME. With --annotations, COCO ground truth is bound by image id (the heads' image_ids array, else the order of the file's images, which is said) and %run --eval / %sweep use pycocotools' evaluation on it; labels map to category ids by the session preset (torchvision: labels are the ids; detectron2, odtk: 0..K-1 over the sorted ids).",
  args: {
    positionals: [
      { name: "NAME", type: "string", help: "dataset name", required: true },
      { name: "PATH", type: "string", help: ".npz file, folder of .npy, folder of shards (cached on the fly into PATH.cache), or a candidate cache folder", required: true },
    ],
    options: [
      { name: "annotations", type: "string", help: "COCO annotation file (instances_val2017.json, ...)" },
      { name: "images", type: "string", help: "folder of the image files (by the annotations' file_name): %run --show draws on them" },
      { name: "min-score", type: "number", help: "shards: lowest score_thresh the cache serves (default min(0.05, score_thresh))", min: 0, max: 1 },
      { name: "max-topk", type: "int", help: "shards: largest topk_candidates the cache serves (default max(1000, topk_candidates))", min: 1, max: 100000 },
    ],
  },
  async run(ctx, args) {
    const v = args.values;
    const shards = require("../../postprocess/cache").isShardFolder(String(v.PATH)) as boolean;
    const ds = wf().workbench.load(String(v.NAME), String(v.PATH), {
      annotations: v.annotations as string | undefined,
      images: v.images as string | undefined,
      ...(v.minScore !== undefined ? { minScore: v.minScore as number } : {}),
      ...(v.maxTopk !== undefined ? { maxTopk: v.maxTopk as number } : {}),
      ...(shards ? { progress: ctx.display.progress(require("../../postprocess/cache").shardFiles(String(v.PATH)).length, { label: "shards" }), stop: stopSignal(ctx) } : {}),
    });
    if (ds.coco) process.stdout.write(`Bound ${ds.coco.file}: ${ds.coco.imageIds.length} images by ${ds.coco.idSource === "image_ids" ? "the heads' image_ids" : "the order of the file's images (the heads carry no image_ids)"}; ${ds.coco.labels.describe}.\n`);
    ctx.executor.bind(ds.name, ds, `import("${modulePath("postprocess/api")}").Dataset`);
    showDatasets(ctx, [ds.name]);
    return {};
  },
};
