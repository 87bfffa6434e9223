#!/usr/bin/env python3
"""Run a RetinaNet over a folder of images and write what retinanet-kernel tunes on.

Shards (default): one .npz per batch in the golden format of retinanet-kernel (cls_logits
[N, R, K], bbox_regression [N, R, 4], image_sizes, feature_sizes, padded_size, image_ids, and the
framework's own detections det{i}_* of the same head outputs, so that `retinanet-kernel run` on a
shard reports parity with the framework). Load them with `%load val SHARDS/ --annotations GT.json`
(a candidate cache is built on the fly) or `retinanet-kernel cache --data SHARDS --out CACHE`.

With --cache MIN_SCORE: the candidate cache itself (the folder format of the README, "The candidate
cache"), selected in torch with a margin so that it holds a superset of what any config with
score_thresh >= MIN_SCORE and topk_candidates <= --max-topk selects; the kernel re-decides every
candidate exactly (its own f32 sigmoid, threshold and tie order) when it runs on the cache.

    python3 examples/export_heads.py --images DIR [--annotations GT.json] --out OUT
        [--weights FILE] [--batch 8] [--device cuda] [--min-size 800 --max-size 1333]
        [--cache 0.05 [--max-topk 1000]] [--limit N]
    python3 examples/export_heads.py --synthetic 16 --out OUT ...   (generated images, no files)

Frameworks (--framework):
  torchvision (default): torch and torchvision; weights from --weights (a state dict), random when
    none. Heads are written concatenated (cls_logits [N, R, K]); --cache selects in torch.
  detectron2: the detectron2 package (built for this torch) and --d2-config (a RetinaNet config such
    as configs/COCO-Detection/retinanet_R_50_FPN_1x.yaml); weights from --weights through
    DetectionCheckpointer, random when none. Heads per level (cls_p3..cls_p7 [N, A*K, H, W],
    box_p3..box_p7), det{i}_* from Detectron2's own forward_inference + detector_postprocess at the
    input size. Use them with %config preset=detectron2 (or --preset detectron2).
  odtk: NVIDIA retinanet-examples (the odtk package with its CUDA extension) and --weights (an ODTK
    checkpoint; Model.load reads backbone, classes and anchors from it). Heads per level as the model
    exports them (sigmoid probabilities: %config preset=odtk score_input=probabilities), det{i}_*
    from ODTK's own decode + NMS (rows with score > 0).
  For detectron2 and odtk, --cache writes the shards to a temporary folder and builds the cache with
  `retinanet-kernel cache` (the kernel's own selection: exact by construction).
When a framework's package is not installed the script says what is needed and exits with 2.
"""
import argparse
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

# The fixed keys of the torchvision preset (kernel/postprocess/presets.ts): a cache binds them.
TORCHVISION_FIXED = {
    "preset": "torchvision",
    "score_input": "logits",
    "anchor_sizes": [[32, 40, 50], [64, 80, 101], [128, 161, 203], [256, 322, 406], [512, 645, 812]],
    "aspect_ratios": [0.5, 1, 2],
    "anchor_cell": "torchvision",
    "anchor_order": "ratio_major",
    "anchor_strides": "padded_size",
    "anchor_offset": 0,
    "size_divisible": 32,
}


def build_model(weights, num_classes, min_size, max_size, device):
    torch.manual_seed(0)  # random weights are the same on every run
    kwargs = dict(weights=None, weights_backbone=None, num_classes=num_classes, min_size=min_size, max_size=max_size)
    try:
        model = torchvision.models.detection.retinanet_resnet50_fpn(**kwargs)
    except TypeError:  # torchvision < 0.13 spells it pretrained=
        model = torchvision.models.detection.retinanet_resnet50_fpn(pretrained=False, pretrained_backbone=False, num_classes=num_classes, min_size=min_size, max_size=max_size)
    if weights:
        state = torch.load(weights, map_location="cpu")
        model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    return model.eval().to(device)


def calibrate(model, batch):
    """Random weights: the class bias set so that about 1 score in 1000 is above 0.1 on these images
    (a trained head's share), whatever the torch version's initialisation gives the features."""
    with torch.no_grad():
        model.head.classification_head.cls_logits.bias.zero_()
        _, _, cls_logits, _, _ = head_outputs(model, batch)
        flat = cls_logits.flatten()
        sample = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000].to(flat.device)]
        q = torch.quantile(sample.float(), 0.999)
        model.head.classification_head.cls_logits.bias.fill_(float(math.log(0.1 / 0.9) - q))


def image_list(args, annotations):
    """(image_id, file or None, HxW for generated images) in a stable order."""
    if args.synthetic:
        g = torch.Generator().manual_seed(1)
        sizes = [(int(torch.randint(240, 480, (1,), generator=g)), int(torch.randint(320, 640, (1,), generator=g))) for _ in range(args.synthetic)]
        return [(i + 1, None, s) for i, s in enumerate(sizes)]
    files = sorted(f for f in os.listdir(args.images) if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if annotations is not None:
        by_name = {im["file_name"]: im["id"] for im in annotations["images"]}
        missing = [f for f in files if f not in by_name]
        if missing:
            sys.exit(f"export_heads.py: expected every image of {args.images} in {args.annotations} (by file_name) but {missing[0]} is not there")
        out = [(by_name[f], os.path.join(args.images, f), None) for f in files]
    else:
        out = [(i + 1, os.path.join(args.images, f), None) for i, f in enumerate(files)]
    return out[: args.limit] if args.limit else out


def load_image(file, size, image_id):
    if file is None:
        g = torch.Generator().manual_seed(image_id)
        img = torch.rand(3, size[0], size[1], generator=g) * 0.2
        for _ in range(4):  # a few bright rectangles
            y, x = int(torch.randint(0, size[0] - 32, (1,), generator=g)), int(torch.randint(0, size[1] - 32, (1,), generator=g))
            img[:, y : y + 64, x : x + 96] = torch.rand(3, 1, 1, generator=g)
        return img
    from torchvision.io import read_image, ImageReadMode

    return read_image(file, ImageReadMode.RGB).float() / 255.0


def head_outputs(model, batch):
    """The transform, backbone and head of torchvision's RetinaNet: what post-processing reads."""
    images, _ = model.transform(batch)
    features = list(model.backbone(images.tensors).values())
    out = model.head(features)
    anchors = model.anchor_generator(images, features)
    return images, features, out["cls_logits"], out["bbox_regression"], anchors


def torchvision_detections(model, features, cls_logits, bbox_regression, anchors, image_sizes):
    """torchvision's own postprocess_detections of the same head outputs (in the network input's pixels)."""
    per_level = [f.size(2) * f.size(3) for f in features]
    A = cls_logits.size(1) // sum(per_level)
    split = [n * A for n in per_level]
    heads = {"cls_logits": list(cls_logits.split(split, dim=1)), "bbox_regression": list(bbox_regression.split(split, dim=1))}
    split_anchors = [list(a.split(split)) for a in anchors]
    return model.postprocess_detections(heads, split_anchors, image_sizes)


class CacheWriter:
    """The candidate cache's columns, appended batch by batch, written whole under a temporary name."""

    def __init__(self, out, min_score, max_topk, num_classes, levels, anchors_per_location):
        self.out = out
        self.tmp = f"{out}.partial-{os.getpid()}"
        os.makedirs(self.tmp)
        self.min_score, self.max_topk = min_score, max_topk
        self.K, self.L, self.A = num_classes, levels, anchors_per_location
        self.cols = {k: [] for k in ["rows", "labels", "values", "deltas", "image_sizes", "padded_sizes", "feature_sizes", "image_ids", "det_boxes", "det_labels", "det_scores"]}
        self.offsets = [0]
        self.det_offsets = [0]
        self.batches = 0

    def add_batch(self, cls_logits, bbox_regression, feature_sizes, padded, image_sizes, image_ids, detections):
        K, A = self.K, self.A
        # A margin below the bound: torch's sigmoid may differ from the kernel's in the last ulp; the
        # kernel re-decides exactly, so a few extra candidates only cost space.
        margin = 1e-6
        for n in range(cls_logits.shape[0]):
            start = 0
            for (h, w) in feature_sizes:
                rows = h * w * A
                logits = cls_logits[n, start : start + rows].reshape(-1)
                scores = torch.sigmoid(logits)
                keep = torch.nonzero(scores > self.min_score - margin).flatten()
                if keep.numel() > self.max_topk:
                    kth = torch.topk(scores[keep], self.max_topk).values[-1]
                    keep = keep[scores[keep] >= kth - margin]
                keep = keep.sort().values
                row = torch.div(keep, K, rounding_mode="floor")
                self.cols["rows"].append(row.to(torch.int32).cpu().numpy())
                self.cols["labels"].append((keep % K).to(torch.int32).cpu().numpy())
                self.cols["values"].append(logits[keep].float().cpu().numpy())
                self.cols["deltas"].append(bbox_regression[n, start + row].float().cpu().numpy().reshape(-1, 4))
                self.offsets.append(self.offsets[-1] + int(keep.numel()))
                start += rows
            self.cols["image_sizes"].append(np.array([image_sizes[n]], dtype=np.int32))
            self.cols["padded_sizes"].append(np.array([padded], dtype=np.int32))
            self.cols["feature_sizes"].append(np.array([feature_sizes], dtype=np.int32))
            self.cols["image_ids"].append(np.array([image_ids[n]], dtype=np.int64))
            d = detections[n]
            self.cols["det_boxes"].append(d["boxes"].float().cpu().numpy().reshape(-1, 4))
            self.cols["det_labels"].append(d["labels"].to(torch.int32).cpu().numpy())
            self.cols["det_scores"].append(d["scores"].float().cpu().numpy())
            self.det_offsets.append(self.det_offsets[-1] + int(d["labels"].numel()))
        self.batches += 1

    def finish(self, source, annotations):
        cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in self.cols.items()}
        n = len(self.cols["image_ids"])
        arrays = {
            "offsets": np.array(self.offsets, dtype=np.int64),
            "rows": cat["rows"].astype(np.int32),
            "labels": cat["labels"].astype(np.int32),
            "values": cat["values"].astype(np.float32),
            "deltas": cat["deltas"].astype(np.float32).reshape(-1, 4),
            "image_sizes": cat["image_sizes"].astype(np.int32).reshape(n, 2),
            "padded_sizes": cat["padded_sizes"].astype(np.int32).reshape(n, 2),
            "feature_sizes": cat["feature_sizes"].astype(np.int32).reshape(n, self.L, 2),
            "image_ids": cat["image_ids"].astype(np.int64),
            "det_offsets": np.array(self.det_offsets, dtype=np.int64),
            "det_boxes": cat["det_boxes"].astype(np.float32).reshape(-1, 4),
            "det_labels": cat["det_labels"].astype(np.int32),
            "det_scores": cat["det_scores"].astype(np.float32),
        }
        for name, a in arrays.items():
            np.save(os.path.join(self.tmp, f"{name}.npy"), np.ascontiguousarray(a))
        meta = {
            "format": "retinanet-kernel/candidate-cache",
            "version": 1,
            "package": "examples/export_heads.py",
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "config": TORCHVISION_FIXED,
            "num_classes": self.K,
            "anchors_per_location": self.A,
            "levels": self.L,
            "min_score": self.min_score,
            "max_topk": self.max_topk,
            "images": n,
            "candidates": int(self.offsets[-1]),
            "source": {"path": source, "layout": "concatenated", "dtype": "float32", "shards": self.batches},
            "given_anchors": False,
            "output_sizes": False,
            "image_ids": True,
            "gt": False,
            "gt_boxes": 0,
            "det": True,
            "det_boxes": int(self.det_offsets[-1]),
        }
        if annotations:
            meta["annotations"] = os.path.abspath(annotations)
        with open(os.path.join(self.tmp, "cache.json"), "w") as f:
            json.dump(meta, f, indent=1)
        if os.path.exists(self.out):
            if not os.path.exists(os.path.join(self.out, "cache.json")):
                shutil.rmtree(self.tmp)
                sys.exit(f"export_heads.py: expected {self.out} to be absent or a candidate cache (it is replaced) but it holds no cache.json")
            shutil.rmtree(self.out)
        os.rename(self.tmp, self.out)

    def abort(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_meta(folder, settings, shard=None):
    """The settings the framework ran with, for `retinanet-kernel run` / `cache` (meta.json, SHARD.json)."""
    text = json.dumps(settings, indent=1)
    for name in ["meta.json"] + ([os.path.basename(shard)[:-4] + ".json"] if shard else []):
        with open(os.path.join(folder, name + ".partial"), "w") as f:
            f.write(text)
        os.replace(os.path.join(folder, name + ".partial"), os.path.join(folder, name))


def need(framework, what, err):
    print(f"export_heads.py: --framework {framework} needs {what}; importing it failed: {err}", file=sys.stderr)
    sys.exit(2)


def d2_exporter(args):
    """Detectron2: (model, per-batch function) giving per-level heads and Detectron2's own detections."""
    try:
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.modeling.postprocessing import detector_postprocess
        import detectron2.data.transforms as T
    except ImportError as e:
        need("detectron2", f"the detectron2 package (facebookresearch/detectron2, built against torch {torch.__version__})", e)
    if not args.d2_config:
        sys.exit("export_heads.py: expected --d2-config FILE (a Detectron2 RetinaNet config, e.g. configs/COCO-Detection/retinanet_R_50_FPN_1x.yaml) with --framework detectron2 but received none")
    cfg = get_cfg()
    cfg.merge_from_file(args.d2_config)
    cfg.MODEL.DEVICE = args.device
    if args.num_classes_given:
        cfg.MODEL.RETINANET.NUM_CLASSES = args.num_classes
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = args.min_size, args.max_size
    model = build_model(cfg).eval()
    if args.weights:
        DetectionCheckpointer(model).load(args.weights)
    aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
    settings = {"score_thresh": cfg.MODEL.RETINANET.SCORE_THRESH_TEST, "topk_candidates": cfg.MODEL.RETINANET.TOPK_CANDIDATES_TEST,
                "nms_thresh": cfg.MODEL.RETINANET.NMS_THRESH_TEST, "detections_per_img": cfg.TEST.DETECTIONS_PER_IMAGE}

    def run(chunk):
        inputs = []
        for (i, f, s) in chunk:
            hwc = (load_image(f, s, i).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            if cfg.INPUT.FORMAT == "BGR":
                hwc = hwc[:, :, ::-1]
            hwc = aug.get_transform(hwc).apply_image(hwc)
            inputs.append({"image": torch.as_tensor(np.ascontiguousarray(hwc.transpose(2, 0, 1))).float(), "height": hwc.shape[0], "width": hwc.shape[1]})
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        features = [features[f] for f in model.head_in_features]
        logits, deltas = model.head(features)
        arrays = {}
        for l, (c, b) in enumerate(zip(logits, deltas)):
            arrays[f"cls_p{l + 3}"] = c.float().cpu().numpy()
            arrays[f"box_p{l + 3}"] = b.float().cpu().numpy()
        dets = []
        for r, (h, w) in zip(model.forward_inference(images, features, [logits, deltas]), images.image_sizes):
            r = detector_postprocess(r, h, w)
            dets.append({"boxes": r.pred_boxes.tensor, "scores": r.scores, "labels": r.pred_classes})
        return arrays, [tuple(x) for x in images.image_sizes], [(c.size(2), c.size(3)) for c in logits], tuple(images.tensor.shape[-2:]), dets

    return run, settings


def odtk_exporter(args):
    """ODTK: per-level heads as the model exports them (probabilities) and ODTK's own decode + NMS."""
    try:
        from odtk.model import Model
    except ImportError as e:
        need("odtk", "NVIDIA retinanet-examples (the odtk package, with its CUDA extension built for this torch)", e)
    if not args.weights:
        sys.exit("export_heads.py: expected --weights CHECKPOINT (an ODTK model: Model.load reads backbone, classes and anchors from it) with --framework odtk but received none")
    model, _ = Model.load(args.weights)
    model = model.to(args.device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    settings = {"score_thresh": model.threshold, "topk_candidates": model.top_n, "nms_thresh": model.nms, "detections_per_img": model.detections, "score_input": "probabilities"}

    def run(chunk):
        ims, sizes = [], []
        for (i, f, s) in chunk:
            im = load_image(f, s, i)
            ratio = min(args.min_size / min(im.shape[1:]), args.max_size / max(im.shape[1:]))
            im = torch.nn.functional.interpolate(im[None], size=[int(ratio * d) for d in im.shape[1:]], mode="bilinear", align_corners=False)[0]
            ims.append((im - mean) / std)
            sizes.append(tuple(im.shape[1:]))
        H = max(h for h, _ in sizes)
        W = max(w for _, w in sizes)
        H, W = (H + model.stride - 1) // model.stride * model.stride, (W + model.stride - 1) // model.stride * model.stride
        x = torch.zeros(len(ims), 3, H, W)
        for n, im in enumerate(ims):
            x[n, :, : im.shape[1], : im.shape[2]] = im
        x = x.to(args.device)
        model.exporting = True
        cls_heads, box_heads = model(x)
        model.exporting = False
        scores, boxes, classes = model(x)
        arrays = {}
        for l, (c, b) in enumerate(zip(cls_heads, box_heads)):
            arrays[f"cls_p{l + 3}"] = c.float().cpu().numpy()
            arrays[f"box_p{l + 3}"] = b.float().cpu().numpy()
        dets = []
        for n in range(len(ims)):
            keep = scores[n] > 0
            dets.append({"boxes": boxes[n].view(-1, 4)[keep], "scores": scores[n][keep], "labels": classes[n][keep].long()})
        return arrays, sizes, [(c.size(2), c.size(3)) for c in cls_heads], (H, W), dets

    return run, settings


def export_framework(args, images):
    """Detectron2 or ODTK: shards of per-level heads (and, with --cache, the kernel's cache of them)."""
    run, settings = (d2_exporter if args.framework == "detectron2" else odtk_exporter)(args)
    shards = tempfile.mkdtemp(prefix="rk-export-") if args.cache is not None else args.out
    os.makedirs(shards, exist_ok=True)
    total = 0
    try:
        with torch.no_grad():
            for b in range(0, len(images), args.batch):
                chunk = images[b : b + args.batch]
                arrays, image_sizes, feature_sizes, padded, dets = run(chunk)
                arrays.update({
                    "image_sizes": np.array(image_sizes, dtype=np.int32),
                    "feature_sizes": np.array(feature_sizes, dtype=np.int32),
                    "padded_size": np.array(padded, dtype=np.int32),
                    "image_ids": np.array([i for (i, _, _) in chunk], dtype=np.int64),
                })
                for n, d in enumerate(dets):
                    arrays[f"det{n}_boxes"] = d["boxes"].float().cpu().numpy()
                    arrays[f"det{n}_scores"] = d["scores"].float().cpu().numpy()
                    arrays[f"det{n}_labels"] = d["labels"].cpu().numpy().astype(np.int64)
                final = os.path.join(shards, f"shard-{b // args.batch:05d}.npz")
                np.savez(final + ".partial.npz", **arrays)
                os.replace(final + ".partial.npz", final)
                write_meta(shards, {"preset": args.framework, **settings}, final)
                total += len(chunk)
                print(f"\r{total}/{len(images)} images", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        config = " ".join(f"{k}={v}" for k, v in settings.items())
        if args.cache is not None:
            cli = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bin", "retinanet-kernel")
            subprocess.run([cli, "cache", "--data", shards, "--out", args.out, "--min-score", str(args.cache), "--max-topk", str(args.max_topk)], check=True)
        print(f"export_heads.py: {total} images -> {args.out} ({args.framework}); to tune on it: %config preset={args.framework} {config}")
    finally:
        if args.cache is not None:
            shutil.rmtree(shards, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of .jpg/.png images")
    src.add_argument("--synthetic", type=int, help="generate this many images instead")
    ap.add_argument("--annotations", help="COCO annotation file: image ids by file_name")
    ap.add_argument("--out", required=True, help="folder of shards, or the cache folder with --cache")
    ap.add_argument("--weights", help="torchvision RetinaNet state dict (random weights when absent)")
    ap.add_argument("--framework", choices=["torchvision", "detectron2", "odtk"], default="torchvision")
    ap.add_argument("--d2-config", help="--framework detectron2: the model's config file")
    ap.add_argument("--num-classes", type=int, default=None, help="classes of a model with random weights (torchvision default 91)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--min-size", type=int, default=800)
    ap.add_argument("--max-size", type=int, default=1333)
    ap.add_argument("--cache", type=float, metavar="MIN_SCORE", help="write the candidate cache (bound: score_thresh >= MIN_SCORE)")
    ap.add_argument("--max-topk", type=int, default=1000, help="with --cache: bound topk_candidates <= N")
    ap.add_argument("--limit", type=int, help="first N images only")
    args = ap.parse_args()
    if args.batch < 1:
        sys.exit(f"export_heads.py: expected --batch >= 1 but received {args.batch}")
    if args.cache is not None and not (0 <= args.cache <= 1):
        sys.exit(f"export_heads.py: expected --cache MIN_SCORE in [0, 1] but received {args.cache}")
    annotations = None
    if args.annotations:
        with open(args.annotations) as f:
            annotations = json.load(f)
    images = image_list(args, annotations)
    if not images:
        sys.exit(f"export_heads.py: expected images in {args.images} but found none (.jpg, .jpeg, .png)")
    args.num_classes_given = args.num_classes is not None
    if args.num_classes is None:
        args.num_classes = 91
    if args.framework != "torchvision":
        return export_framework(args, images)
    model = build_model(args.weights, args.num_classes, args.min_size, args.max_size, args.device)
    if not args.weights:
        (i, f, sz) = images[0]
        calibrate(model, [load_image(f, sz, i).to(args.device)])
    writer = None
    if args.cache is None:
        os.makedirs(args.out, exist_ok=True)
    total = 0
    try:
        with torch.no_grad():
            for b in range(0, len(images), args.batch):
                chunk = images[b : b + args.batch]
                batch = [load_image(f, s, i).to(args.device) for (i, f, s) in chunk]
                nl, features, cls_logits, bbox_regression, anchors = head_outputs(model, batch)
                feature_sizes = [(f.size(2), f.size(3)) for f in features]
                padded = tuple(nl.tensors.shape[-2:])
                A = cls_logits.size(1) // sum(h * w for h, w in feature_sizes)
                dets = torchvision_detections(model, features, cls_logits, bbox_regression, anchors, nl.image_sizes)
                ids = [i for (i, _, _) in chunk]
                if args.cache is not None:
                    if writer is None:
                        writer = CacheWriter(args.out, args.cache, args.max_topk, cls_logits.size(2), len(feature_sizes), A)
                    writer.add_batch(cls_logits, bbox_regression, feature_sizes, padded, nl.image_sizes, ids, dets)
                else:
                    arrays = {
                        "cls_logits": cls_logits.float().cpu().numpy(),
                        "bbox_regression": bbox_regression.float().cpu().numpy(),
                        "image_sizes": np.array(nl.image_sizes, dtype=np.int32),
                        "feature_sizes": np.array(feature_sizes, dtype=np.int32),
                        "padded_size": np.array(padded, dtype=np.int32),
                        "image_ids": np.array(ids, dtype=np.int64),
                    }
                    for n, d in enumerate(dets):
                        arrays[f"det{n}_boxes"] = d["boxes"].float().cpu().numpy()
                        arrays[f"det{n}_scores"] = d["scores"].float().cpu().numpy()
                        arrays[f"det{n}_labels"] = d["labels"].cpu().numpy().astype(np.int64)
                    final = os.path.join(args.out, f"shard-{b // args.batch:05d}.npz")
                    tmp = final + ".partial.npz"
                    np.savez(tmp, **arrays)
                    os.replace(tmp, final)
                    write_meta(args.out, {"preset": "torchvision", "score_thresh": model.score_thresh, "nms_thresh": model.nms_thresh,
                                          "topk_candidates": model.topk_candidates, "detections_per_img": model.detections_per_img}, final)
                total += len(chunk)
                print(f"\r{total}/{len(images)} images", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        if writer is not None:
            writer.finish(args.images or f"synthetic:{args.synthetic}", args.annotations)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    what = f"the candidate cache {args.out} (min_score {args.cache}, max_topk {args.max_topk})" if args.cache is not None else f"{math.ceil(total / args.batch)} shards in {args.out}"
    print(f"export_heads.py: {total} images -> {what}; torchvision {torchvision.__version__}, torch {torch.__version__}, {args.device}")


if __name__ == "__main__":
    main()
