/** What this machine offers: CPU, CUDA devices, TensorRT, compiled-in backends, addon build info. */
import * as os from "os";

import { CudaDevice, loadNative, nativeStatus } from "../native";
import { availableBackends } from "./postprocessor";

export interface DevicesInfo {
  cpu: { model: string; cores: number; threadsUsable: number; arch: string };
  cuda: { compiled: boolean; devices: CudaDevice[]; reason?: string; driverVersion?: number; runtimeVersion?: number; architectures?: string };
  tensorrt: { compiled: boolean; reason?: string; headersVersion?: string; library?: string };
  backends: { available: string[]; unavailable: Record<string, string | undefined> };
  addon: { loaded: boolean; path: string; reason?: string; version?: string; compiler?: string; simd?: string; napiVersion?: number };
  node: string;
}

export function devicesInfo(): DevicesInfo {
  const addon = loadNative();
  const status = nativeStatus();
  const cpus = os.cpus();
  const info: DevicesInfo = {
    cpu: { model: cpus[0]?.model.trim() ?? "unknown", cores: cpus.length, threadsUsable: os.availableParallelism(), arch: os.arch() },
    cuda: { compiled: false, devices: [] },
    tensorrt: { compiled: false, reason: "the native addon is not loaded" },
    backends: availableBackends(),
    addon: { loaded: status.loaded, path: status.path, reason: status.reason },
    node: process.version,
  };
  if (addon) {
    const b = addon.buildInfo;
    info.addon = { ...info.addon, version: b.version, compiler: b.compiler, simd: b.simd, napiVersion: b.napiVersion };
    info.tensorrt = b.tensorrt;
    info.cuda.compiled = b.cuda.compiled;
    info.cuda.runtimeVersion = b.cuda.runtimeVersion;
    info.cuda.architectures = b.cuda.architectures;
    if (addon.devices) {
      const d = addon.devices();
      info.cuda.devices = d.devices;
      info.cuda.reason = d.reason;
      info.cuda.driverVersion = d.driverVersion;
    } else {
      info.cuda.reason = b.cuda.reason;
    }
  } else {
    info.cuda.reason = status.reason;
  }
  return info;
}

/** The same as text lines (the CLI's `devices` and the text/plain of %devices). */
export function devicesReport(): { info: DevicesInfo; text: string } {
  const i = devicesInfo();
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  const lines = [
    `CPU        ${i.cpu.model} (${i.cpu.arch}), ${i.cpu.cores} cores, ${i.cpu.threadsUsable} usable threads`,
    `CUDA       ${
      i.cuda.devices.length
        ? i.cuda.devices.map((d) => `#${d.index} ${d.name} (sm_${d.sm.replace(".", "")}, ${d.multiprocessors} SMs, ${gib(d.memoryBytes)})`).join("; ")
        : `none: ${i.cuda.reason ?? "unknown"}`
    }${i.cuda.compiled ? ` [compiled for ${i.cuda.architectures}]` : ""}`,
    `TensorRT   ${i.tensorrt.compiled ? `plugins built: ${i.tensorrt.library} (TensorRT ${i.tensorrt.headersVersion} headers; engines need libnvinfer at run time)` : `plugins not built: ${i.tensorrt.reason}`}`,
    `Backends   ${i.backends.available.join(", ")}${Object.entries(i.backends.unavailable)
      .map(([k, v]) => `; ${k} unavailable (${v})`)
      .join("")}`,
    `Addon      ${i.addon.loaded ? `${i.addon.version}, ${i.addon.compiler}, SIMD ${i.addon.simd}, Node-API ${i.addon.napiVersion}` : `not loaded: ${i.addon.reason}`}`,
    `Node.js    ${i.node}`,
  ];
  return { info: i, text: lines.join("\n") };
}
