/** %devices: CPU, CUDA devices, TensorRT and the compiled-in backends. */
import { tableBundle } from "../../display/render";
import { Magic } from "../registry";

export const devices: Magic = {
  name: "devices",
  kind: "line",
  summary: "what this machine offers: CPU, CUDA devices, TensorRT, compiled-in backends, addon build",
  help: "",
  args: {},
  async run(ctx) {
    const { info, text } = (require("../../postprocess/devices") as typeof import("../../postprocess/devices")).devicesReport();
    const rows: string[][] = [
      ["CPU", `${info.cpu.model}, ${info.cpu.cores} cores (${info.cpu.arch})`],
      ["CUDA", info.cuda.devices.length ? info.cuda.devices.map((d) => `#${d.index} ${d.name} (sm_${d.sm.replace(".", "")}, ${(d.memoryBytes / 2 ** 30).toFixed(0)} GiB)`).join("; ") : `none: ${info.cuda.reason ?? "not compiled"}`],
      ["CUDA in the addon", info.cuda.compiled ? `yes (runtime ${info.cuda.runtimeVersion}, ${info.cuda.architectures})` : "no"],
      ["TensorRT plugins", info.tensorrt.compiled ? `built: ${info.tensorrt.library} (TensorRT ${info.tensorrt.headersVersion} headers; engines need libnvinfer at run time)` : `not built: ${info.tensorrt.reason ?? ""}`],
      ["backends", `${info.backends.available.join(", ")}${Object.entries(info.backends.unavailable).filter(([, r]) => r).map(([b, r]) => `; ${b}: ${r}`).join("")}`],
      ["addon", info.addon.loaded ? `${info.addon.version}, ${info.addon.compiler}, ${info.addon.simd}, N-API ${info.addon.napiVersion}` : `not loaded: ${info.addon.reason}`],
      ["Node", info.node],
    ];
    ctx.display({ ...tableBundle(["", ""], rows), "text/plain": text });
    return { value: undefined };
  },
};
