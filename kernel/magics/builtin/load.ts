/** %load: head outputs from a file, with COCO ground truth bound by image id. */
import { modulePath } from "../../runtime/prelude";
import { Magic } from "../registry";
import { showDatasets, wf } from "./workflow-common";

export const load: Magic = {
  name: "load",
  kind: "line",
  summary: "load head outputs: %load NAME PATH [--annotations GT.json] (.npz in the golden format, or a folder of .npy)",
  help: "The dataset gets NAME in %datasets and in --data of the other magics, and is bound in the cell scope as NAME. With --annotations, COCO ground truth is bound by image id (the heads' image_ids array, else the order of the file's images, which is said) and %run --eval / %sweep use pycocotools' evaluation on it; labels map to category ids by the session preset (torchvision: labels are the ids; detectron2, odtk: 0..K-1 over the sorted ids).",
  args: {
    positionals: [
      { name: "NAME", type: "string", help: "dataset name", required: true },
      { name: "PATH", type: "string", help: ".npz file or folder of .npy", required: true },
    ],
    options: [
      { name: "annotations", type: "string", help: "COCO annotation file (instances_val2017.json, ...)" },
      { name: "images", type: "string", help: "folder of the image files (by the annotations' file_name): %run --show draws on them" },
    ],
  },
  async run(ctx, args) {
    const ds = wf().workbench.load(String(args.values.NAME), String(args.values.PATH), { annotations: args.values.annotations as string | undefined, images: args.values.images as string | undefined });
    if (ds.coco) process.stdout.write(`Bound ${ds.coco.file}: ${ds.coco.imageIds.length} images by ${ds.coco.idSource === "image_ids" ? "the heads' image_ids" : "the order of the file's images (the heads carry no image_ids)"}; ${ds.coco.labels.describe}.\n`);
    ctx.executor.bind(ds.name, ds, `import("${modulePath("postprocess/api")}").Dataset`);
    showDatasets(ctx, [ds.name]);
    return {};
  },
};
