/** .npz archives (a zip of .npy members) and folders of .npy files. */
import * as fs from "fs";
import * as path from "path";

import { writeFileWhole } from "../files";
import { NdArray } from "./ndarray";
import { formatNpy, parseNpy } from "./npy";
import { ZipFormatError, buildZip, listZip, readZipEntry } from "./zip";

export type ArrayMap = Map<string, NdArray>;

function readFile(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw Object.assign(new Error(`Expected a readable file for ${what} but received ${JSON.stringify(file)} (${err.code ?? err.message})`), {
      code: "ERR_RK_FILE",
    });
  }
}

/** Reads every array of an .npz file (or buffer). Member names lose their ".npy" suffix. */
export function readNpz(source: string | Buffer, options: { checkCrc?: boolean } = {}): ArrayMap {
  const what = typeof source === "string" ? JSON.stringify(source) : "the .npz buffer";
  const buf = typeof source === "string" ? readFile(source, "an .npz file") : source;
  const out: ArrayMap = new Map();
  for (const entry of listZip(buf, what)) {
    if (!entry.name.endsWith(".npy")) continue;
    const name = entry.name.slice(0, -4);
    out.set(name, parseNpy(readZipEntry(buf, entry, what, options.checkCrc ?? true), `${name} in ${what}`));
  }
  if (out.size === 0) throw new ZipFormatError(`Expected .npy members in ${what} but found none`);
  return out;
}

/** Writes an .npz whole or not at all (`options.what` names the path's option in errors). */
export function writeNpz(file: string, arrays: ArrayMap | Record<string, NdArray>, options: { compress?: boolean; what?: string } = {}): void {
  const entries = arrays instanceof Map ? [...arrays.entries()] : Object.entries(arrays);
  const zip = buildZip(entries.map(([name, a]) => ({ name: `${name}.npy`, data: formatNpy(a) })), options.compress ?? false);
  writeFileWhole(file, options.what ?? "the .npz file", zip);
}

export function readNpy(file: string): NdArray {
  return parseNpy(readFile(file, "a .npy file"), JSON.stringify(file));
}

export function writeNpy(file: string, a: NdArray, what = "the .npy file"): void {
  writeFileWhole(file, what, formatNpy(a));
}

/** Every `*.npy` of a folder, keyed by file name without the suffix. */
export function readNpyFolder(dir: string): ArrayMap {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith(".npy")).sort();
  } catch (e) {
    throw Object.assign(new Error(`Expected a folder of .npy files but received ${JSON.stringify(dir)} (${(e as NodeJS.ErrnoException).code})`), {
      code: "ERR_RK_FILE",
    });
  }
  if (names.length === 0) throw Object.assign(new Error(`Expected .npy files in ${JSON.stringify(dir)} but found none`), { code: "ERR_RK_FILE" });
  const out: ArrayMap = new Map();
  for (const n of names) out.set(n.slice(0, -4), readNpy(path.join(dir, n)));
  return out;
}
