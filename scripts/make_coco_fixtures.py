"""Makes test/fixtures/coco/*.json: generated COCO cases evaluated by pycocotools' own COCOeval.

pycocotools is not part of this project and is not installed from PyPI here: give the folder that
holds its `coco.py` and `cocoeval.py` (PythonAPI/pycocotools of the public cocodataset/cocoapi
repository) as the first argument. Its compiled mask extension is replaced by `bb_iou` below, this
project's numpy transcription of the box IoU of its C helper (bbIou in common/maskApi.c), the only
part of the extension that box evaluation uses. numpy >= 1.24 has no `np.float`, which
COCOeval.accumulate uses: it is set to np.float64 before the import.

Usage: /usr/bin/python3 scripts/make_coco_fixtures.py PATH/TO/pycocotools [OUT_DIR]
       /usr/bin/python3 scripts/make_coco_fixtures.py PATH/TO/pycocotools --time GT.json RES.json
Each fixture holds the case (ground truth, results, useCats) and the figures pycocotools printed:
the 12 stats and the per-category AP (mean of precision[:, :, k, area all, maxDets 100] > -1).
"""
import contextlib
import importlib.util
import io
import json
import os
import sys
import time
import types

import numpy as np


def bb_iou(dt, gt, iscrowd):
    """IoU of boxes [x, y, w, h] as maskApi.c's bbIou computes it, in doubles; shape (len(dt), len(gt))."""
    if len(dt) == 0 or len(gt) == 0:
        return []
    d = np.asarray(dt, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    crowd = np.asarray(iscrowd, dtype=bool).reshape(1, -1)
    da = (d[:, 2] * d[:, 3])[:, None]
    ga = (g[:, 2] * g[:, 3])[None, :]
    w = np.minimum(d[:, 2:3] + d[:, 0:1], (g[:, 2] + g[:, 0])[None, :]) - np.maximum(d[:, 0:1], g[:, 0][None, :])
    h = np.minimum(d[:, 3:4] + d[:, 1:2], (g[:, 3] + g[:, 1])[None, :]) - np.maximum(d[:, 1:2], g[:, 1][None, :])
    inter = w * h
    union = np.where(crowd, da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        o = np.where((w > 0) & (h > 0), inter / union, 0.0)
    return o


def load_pycocotools(folder):
    np.float = np.float64  # removed in numpy 1.24; COCOeval.accumulate still names it
    pkg = types.ModuleType("pycocotools")
    pkg.__path__ = [folder]
    sys.modules["pycocotools"] = pkg
    mask = types.ModuleType("pycocotools.mask")
    mask.iou = bb_iou
    sys.modules["pycocotools.mask"] = mask
    for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.collections", "matplotlib.patches"):
        if importlib.util.find_spec(name.split(".")[0]) is None:
            stub = types.ModuleType(name)
            stub.PatchCollection = stub.Polygon = object
            sys.modules[name] = stub
    mods = {}
    for name in ("coco", "cocoeval"):
        spec = importlib.util.spec_from_file_location(f"pycocotools.{name}", os.path.join(folder, f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f"pycocotools.{name}"] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    return mods["coco"].COCO, mods["cocoeval"].COCOeval


def evaluate(COCO, COCOeval, gt, results, use_cats=1, quiet=True):
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(results))) if results else COCO()
        if not results:
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.useCats = use_cats
        ev.evaluate()
        ev.accumulate()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            ev.summarize()
    per_cat = {}
    if use_cats:
        prec = ev.eval["precision"]
        for k, cat in enumerate(ev.params.catIds):
            p = prec[:, :, k, 0, -1]
            p = p[p > -1]
            per_cat[str(cat)] = float(np.mean(p)) if p.size else None
    return [float(x) for x in ev.stats], per_cat, out.getvalue()


# ---------------------------------------------------------------------------------------------
# Cases

def rand_box(rng, W, H, lo=4, hi=300):
    w = float(rng.uniform(lo, hi))
    h = float(rng.uniform(lo, hi))
    x = float(rng.uniform(0, max(1.0, W - w)))
    y = float(rng.uniform(0, max(1.0, H - h)))
    return [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]


def make_case(seed, n_images=20, cat_ids=(1, 3, 7, 8, 90), gts_per_image=(0, 6), crowd_rate=0.0, fp_per_image=(0, 6),
              max_dets=None, score_step=None, tiny_huge=False, empty_cats=(), id_zero=False, images_without_gt=0):
    rng = np.random.default_rng(seed)
    W, H = 640, 480
    images = [{"id": int(1000 + 7 * i), "width": W, "height": H, "file_name": f"img{i:04d}.jpg"} for i in range(n_images)]
    cats = [{"id": int(c), "name": f"class{c}", "supercategory": "thing"} for c in list(cat_ids) + list(empty_cats)]
    anns, results = [], []
    ann_id = 0 if id_zero else 1
    for idx, img in enumerate(images):
        n = 0 if idx < images_without_gt else int(rng.integers(gts_per_image[0], gts_per_image[1] + 1))
        for _ in range(n):
            c = int(rng.choice(cat_ids))
            box = rand_box(rng, W, H)
            if tiny_huge and rng.random() < 0.4:
                kind = rng.integers(0, 4)
                if kind == 0:
                    box = [round(float(rng.uniform(0, W)), 2), round(float(rng.uniform(0, H)), 2), round(float(rng.uniform(0.1, 2)), 3), round(float(rng.uniform(0.1, 2)), 3)]
                elif kind == 1:
                    box = [0.0, 0.0, float(W), float(H)]
                elif kind == 2:
                    box = [10.0, 10.0, 32.0, 32.0]  # area exactly 32^2
                else:
                    box = [20.0, 20.0, 96.0, 96.0]  # area exactly 96^2
            crowd = 1 if rng.random() < crowd_rate else 0
            area = box[2] * box[3]
            if crowd or rng.random() < 0.3:
                area = round(area * float(rng.uniform(0.5, 1.0)), 3)  # a segmentation's area is not the box's
            anns.append({"id": ann_id, "image_id": img["id"], "category_id": c, "bbox": box, "area": area, "iscrowd": crowd,
                         "segmentation": [[box[0], box[1], box[0] + box[2], box[1], box[0] + box[2], box[1] + box[3]]]})
            ann_id += 1
            # detections around it: jittered, sometimes of another class, sometimes several
            for _ in range(int(rng.integers(0, 4))):
                j = [box[0] + float(rng.normal(0, 0.08 * box[2] + 0.5)), box[1] + float(rng.normal(0, 0.08 * box[3] + 0.5)),
                     max(0.0, box[2] * float(rng.uniform(0.8, 1.2))), max(0.0, box[3] * float(rng.uniform(0.8, 1.2)))]
                dc = c if rng.random() < 0.85 else int(rng.choice(list(cat_ids) + list(empty_cats)))
                results.append({"image_id": img["id"], "category_id": dc, "bbox": [round(v, 3) for v in j], "score": float(rng.uniform(0.05, 1.0))})
        for _ in range(int(rng.integers(fp_per_image[0], fp_per_image[1] + 1))):
            results.append({"image_id": img["id"], "category_id": int(rng.choice(list(cat_ids) + list(empty_cats))), "bbox": rand_box(rng, W, H), "score": float(rng.uniform(0.01, 0.9))})
        if max_dets:
            for _ in range(max_dets):
                results.append({"image_id": img["id"], "category_id": int(rng.choice(cat_ids)), "bbox": rand_box(rng, W, H, 2, 80), "score": float(rng.uniform(0.0, 0.5))})
    if id_zero and anns:
        # pycocotools reads a match to ground truth id 0 as no match: give that annotation a perfect detection
        a0 = anns[0]
        results.append({"image_id": a0["image_id"], "category_id": a0["category_id"], "bbox": list(a0["bbox"]), "score": 0.99})
    if score_step:
        for r in results:
            r["score"] = round(round(r["score"] / score_step) * score_step, 6)
    return {"images": images, "annotations": anns, "categories": cats}, results


CASES = {
    "basic": dict(seed=1),
    "crowds": dict(seed=2, crowd_rate=0.25, gts_per_image=(1, 8)),
    "missing-categories": dict(seed=3, empty_cats=(5, 42), images_without_gt=5),
    "many-detections": dict(seed=4, n_images=8, max_dets=240),
    "equal-scores": dict(seed=5, score_step=0.1, gts_per_image=(2, 8)),
    "tiny-and-huge": dict(seed=6, tiny_huge=True, gts_per_image=(2, 10)),
    "gt-id-zero": dict(seed=7, id_zero=True, n_images=6),
    "one-category": dict(seed=8, cat_ids=(18,), gts_per_image=(1, 5)),
}


def main():
    folder = sys.argv[1]
    COCO, COCOeval = load_pycocotools(folder)
    if len(sys.argv) > 2 and sys.argv[2] == "--time":
        gt = json.load(open(sys.argv[3]))
        res = json.load(open(sys.argv[4]))
        t0 = time.time()
        stats, _, text = evaluate(COCO, COCOeval, gt, res, quiet=False)
        print(text)
        print(f"pycocotools: {time.time() - t0:.1f} s for {len(gt['images'])} images, {len(gt['annotations'])} annotations, {len(res)} detections")
        return
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "coco")
    os.makedirs(out_dir, exist_ok=True)
    runs = [(name, spec, 1) for name, spec in CASES.items()] + [("basic-no-cats", CASES["basic"], 0), ("crowds-no-cats", CASES["crowds"], 0)]
    runs.append(("no-detections", dict(seed=9, n_images=5), 1))
    for name, spec, use_cats in runs:
        gt, results = make_case(**spec)
        if name == "no-detections":
            results = []
        stats, per_cat, text = evaluate(COCO, COCOeval, gt, results, use_cats)
        fixture = {"case": name, "useCats": use_cats, "made_by": "pycocotools COCOeval (iouType bbox) via scripts/make_coco_fixtures.py",
                   "stats": stats, "per_category": per_cat, "summary": text.rstrip("\n").split("\n"), "gt": gt, "results": results}
        with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
            json.dump(fixture, f)
        print(f"{name}: {len(gt['images'])} images, {len(gt['annotations'])} annotations, {len(results)} detections, AP {stats[0]:.4f}")


if __name__ == "__main__":
    main()
