#!/usr/bin/env python3
"""torchvision RetinaNet -> ONNX -> the RetinaNetPostprocess TensorRT plugin of retinanet-kernel.

1. In the kernel, tune the post-processing and write it as plugin fields for the network's input size:
       %synth shapes --images 1 --size 512x640 --classes 91
       %config score_thresh=0.3
       %optimize --export-plugin retina
   (retina.json: the fields; retina.py: the script that adds the plugin node to an ONNX model.)
2. Here: export torchvision's RetinaNet up to its head outputs (cls_logits [N, R, K],
   bbox_regression [N, R, 4]), add the plugin node with retina.py, check the model with onnx.
3. If the `tensorrt` Python package and the plugin library (built with TENSORRT_ROOT, beside the
   addon as build/Release/libretinanet_kernel_trt.so) are present: build an engine, run it, and
   compare its detections with torchvision's own postprocess_detections on the same head outputs.
   Otherwise say exactly what is missing and how to finish with trtexec.

    python3 examples/torchvision_retinanet_trt.py --plugin retina.json [--weights FILE] [--out retina_trt.onnx]

Needs torch, torchvision and onnx (pip); TensorRT only for step 3.
"""
import argparse
import importlib.util
import json
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_heads  # noqa: E402  (the same split, anchors and postprocess_detections as the exporter)


class HeadOutputs(torch.nn.Module):
    """RetinaNet's backbone + head: the tensors its post-processing reads (no transform, no decode)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        features = list(self.model.backbone(images).values())
        out = self.model.head(features)
        return out["cls_logits"], out["bbox_regression"]


def torchvision_detections(model, images, cls_logits, bbox_regression):
    """torchvision's own post-processing of the same head outputs (per-level split, anchors, decode, NMS)."""
    from torchvision.models.detection.image_list import ImageList

    sizes = [tuple(images.shape[-2:])] * images.shape[0]
    features = list(model.backbone(images).values())
    anchors = model.anchor_generator(ImageList(images, sizes), features)
    return export_heads.torchvision_detections(model, features, cls_logits, bbox_regression, anchors, sizes)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugin", required=True, help="the JSON written by %%optimize --export-plugin")
    ap.add_argument("--weights", help="a torchvision RetinaNet state dict (default: random weights, shapes only)")
    ap.add_argument("--out", default="retina_trt.onnx")
    ap.add_argument("--library", default=os.path.join(os.path.dirname(__file__), "..", "build", "Release", "libretinanet_kernel_trt.so"))
    args = ap.parse_args()

    spec = json.load(open(args.plugin))
    fields = {f["name"]: f["value"] for f in spec["fields"]}
    H, W = fields["padded_size"]
    K = spec["inputs"][0]["shape"][2]
    model = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=K).eval()
    # torchvision's post-processing with the tuned values, for the comparison.
    model.score_thresh = float(fields["score_thresh"][0])
    model.nms_thresh = float(fields["nms_thresh"][0])
    model.detections_per_img = int(fields["detections_per_img"][0])
    model.topk_candidates = int(fields["topk_candidates"][0])
    if args.weights:
        model.load_state_dict(torch.load(args.weights, map_location="cpu"))
    images = torch.randn(1, 3, H, W)
    net = HeadOutputs(model).eval()
    with torch.no_grad():
        cls_logits, bbox_regression = net(images)
    want = spec["inputs"][0]["shape"][1]
    if cls_logits.shape[1] != want:
        sys.exit("the model has %d anchor rows at %dx%d but %s describes %d: export the plugin for this input size"
                 % (cls_logits.shape[1], H, W, args.plugin, want))

    heads_onnx = args.out.replace(".onnx", "_heads.onnx")
    torch.onnx.export(net, (images,), heads_onnx, input_names=["images"], output_names=["cls_logits", "bbox_regression"],
                      opset_version=17, dynamo=False)
    print("exported %s: cls_logits %s, bbox_regression %s" % (heads_onnx, tuple(cls_logits.shape), tuple(bbox_regression.shape)))

    script = args.plugin.replace(".json", ".py")
    sp = importlib.util.spec_from_file_location("add_plugin", script)
    add_plugin = importlib.util.module_from_spec(sp)
    sp.loader.exec_module(add_plugin)
    add_plugin.main([heads_onnx, args.out, "--inputs", "cls_logits", "bbox_regression"])

    import onnx

    m = onnx.load(args.out)
    onnx.checker.check_model(m)
    node = m.graph.node[-1]
    print("checked %s: last node %s with %d attributes, outputs %s" % (args.out, node.op_type, len(node.attribute), [o.name for o in m.graph.output]))

    with torch.no_grad():
        reference = torchvision_detections(model, images, cls_logits, bbox_regression)
    print("torchvision: %d detections for image 0" % len(reference[0]["scores"]))

    try:
        import tensorrt as trt
    except ImportError:
        print("TensorRT: the tensorrt Python package is not installed here, so the engine is not built.\n"
              "  With a TensorRT SDK: trtexec --onnx=%s --dynamicPlugins=%s --saveEngine=retina.plan\n"
              "  (the plugin library is built by `TENSORRT_ROOT=/path/to/TensorRT npm run build:native`)" % (args.out, args.library))
        return
    if not os.path.exists(args.library):
        sys.exit("TensorRT is here but the plugin library is not: %s (build it with TENSORRT_ROOT=... npm run build:native)" % args.library)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    builder.get_plugin_registry().load_library(args.library)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(open(args.out, "rb").read()):
        sys.exit("; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, builder.create_builder_config()))
    context = engine.create_execution_context()
    device = torch.device("cuda")
    inputs = {"images": images.to(device)}
    outputs = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            dtype = torch.int32 if engine.get_tensor_dtype(name) == trt.int32 else torch.float32
            outputs[name] = torch.zeros(tuple(engine.get_tensor_shape(name)), dtype=dtype, device=device)
    for name, t in {**inputs, **outputs}.items():
        context.set_tensor_address(name, t.data_ptr())
    context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    n = int(outputs["num_detections"][0, 0])
    ref = reference[0]
    same = n == len(ref["scores"]) and torch.equal(outputs["detection_classes"][0, :n].cpu().long(), ref["labels"]) and \
        torch.allclose(outputs["detection_scores"][0, :n].cpu(), ref["scores"], atol=1e-6) and \
        torch.allclose(outputs["detection_boxes"][0, :n].cpu(), ref["boxes"], rtol=1e-4, atol=1e-4)
    print("TensorRT engine: %d detections; same as torchvision: %s" % (n, same))


if __name__ == "__main__":
    main()
