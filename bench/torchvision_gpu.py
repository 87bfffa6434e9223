"""torchvision's RetinaNet.postprocess_detections on the GPU, a copy of the same bytes (the copy floor)
and one read of them, f32 and f16 (the read floor: torch.amax over each tensor),
on heads written by bench/gpu (npz in the golden format plus feature_sizes). Called by bench/gpu;
prints nothing but errors, writes a JSON of timings and an npz of torchvision's detections per case.

    python3 bench/torchvision_gpu.py --manifest cases.json --out results.json [--iterations N]
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch
import torchvision
from torchvision.models.detection import retinanet_resnet50_fpn


def timed(fn, iterations, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return {"median": statistics.median(times), "p90": times[min(len(times) - 1, int(0.9 * len(times)))], "runs": len(times)}


def run_case(case, iterations):
    z = np.load(case["npz"])
    dev = torch.device("cuda")
    cls = torch.from_numpy(z["cls_logits"]).to(dev)
    box = torch.from_numpy(z["bbox_regression"]).to(dev)
    anchors = torch.from_numpy(z["anchors"]).to(dev)
    sizes = [tuple(int(v) for v in s) for s in z["image_sizes"]]
    feature_sizes = z["feature_sizes"]
    n, _, k = cls.shape
    a = int(case["anchors_per_location"])
    per_level = [int(h) * int(w) * a for h, w in feature_sizes]
    cfg = case["config"]
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=k,
                                   score_thresh=cfg["score_thresh"], nms_thresh=cfg["nms_thresh"],
                                   detections_per_img=cfg["detections_per_img"],
                                   topk_candidates=cfg["topk_candidates"]).to(dev).eval()
    heads = {"cls_logits": list(cls.split(per_level, dim=1)), "bbox_regression": list(box.split(per_level, dim=1))}
    split_anchors = [list(anchors.split(per_level, dim=0)) for _ in range(n)]

    def post():
        with torch.no_grad():
            return model.postprocess_detections(heads, split_anchors, sizes)

    result = {"torchvision": timed(post, iterations)}
    dets = post()
    out = {}
    for i, d in enumerate(dets):
        out[f"det{i}_boxes"] = d["boxes"].float().cpu().numpy()
        out[f"det{i}_scores"] = d["scores"].float().cpu().numpy()
        out[f"det{i}_labels"] = d["labels"].cpu().numpy().astype(np.int64)
    np.savez(case["detections"], **out)
    result["counts"] = [int(d["boxes"].shape[0]) for d in dets]

    cls_copy = torch.empty_like(cls)
    box_copy = torch.empty_like(box)

    def copy():
        cls_copy.copy_(cls)
        box_copy.copy_(box)

    result["floor"] = timed(copy, max(iterations, 50))
    result["bytes"] = cls.numel() * cls.element_size() + box.numel() * box.element_size()

    # The read floor: one pass that reads every head byte and writes almost nothing (a max
    # reduction of each tensor), for f32 and for the same heads in f16.
    def reader(c, b):
        def read():
            torch.amax(c)
            torch.amax(b)
        return read

    result["read_floor"] = timed(reader(cls, box), max(iterations, 50))
    cls16, box16 = cls.half(), box.half()
    result["read_floor_fp16"] = timed(reader(cls16, box16), max(iterations, 50))
    del cls16, box16
    # The link: the same head bytes copied in from pinned host memory (what the copy engine can do),
    # and from pageable memory (torch's plain .copy_ from numpy-backed tensors).
    pinned_cls, pinned_box = cls.cpu().pin_memory(), box.cpu().pin_memory()
    page_cls, page_box = cls.cpu(), box.cpu()

    def link(c, b):
        def copy_in():
            cls_copy.copy_(c, non_blocking=True)
            box_copy.copy_(b, non_blocking=True)
        return copy_in

    result["link_pinned"] = timed(link(pinned_cls, pinned_box), 10)
    result["link_pageable"] = timed(link(page_cls, page_box), 5)
    del pinned_cls, pinned_box, page_cls, page_box
    del cls_copy, box_copy, cls, box, heads, model
    torch.cuda.empty_cache()
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    cases = json.load(open(args.manifest))
    t0 = time.time()
    results = {"torch": torch.__version__, "torchvision": torchvision.__version__,
               "gpu": torch.cuda.get_device_name(0), "cases": {}}
    for case in cases:
        results["cases"][case["name"]] = run_case(case, args.iterations)
    results["seconds"] = time.time() - t0
    json.dump(results, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
