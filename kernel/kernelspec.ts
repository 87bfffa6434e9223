/**
 * `retinanet-kernel install` / `uninstall`: writes kernel.json (from the template at the package
 * root) where Jupyter looks for kernelspecs, as `jupyter kernelspec install` would place it:
 *   --user (default)  $JUPYTER_DATA_DIR/kernels, else ~/.local/share/jupyter/kernels
 *   --prefix P        P/share/jupyter/kernels
 *   --sys-prefix      <sys.prefix of the Python that has jupyter_client>/share/jupyter/kernels
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { ArgSchema, parseArgs, usage } from "./args";
import { makeFolders, writeFileWhole } from "./files";
import { PACKAGE_ROOT } from "./native";

const SCHEMA: ArgSchema = {
  options: [
    { name: "user", type: "bool", help: "install for this user (the default)" },
    { name: "prefix", type: "string", help: "install under PREFIX/share/jupyter/kernels" },
    { name: "sys-prefix", type: "bool", help: "install under the sys.prefix of Jupyter's Python" },
    { name: "name", type: "string", default: "retinanet-kernel", help: "kernelspec name (folder)" },
    { name: "display-name", type: "string", default: "TypeScript (RetinaNet)", help: "name shown in Jupyter's launcher" },
    { name: "help", alias: "h", type: "bool", help: "show this help" },
  ],
};

function jupyterPython(): string {
  for (const py of ["/usr/bin/python3", "python3"]) {
    const r = spawnSync(py, ["-c", "import jupyter_client, sys; print(sys.prefix)"], { encoding: "utf8" });
    if (r.status === 0) return r.stdout.trim();
  }
  throw new Error("Expected a Python with jupyter_client for --sys-prefix but found none (install jupyter-client)");
}

export function kernelsDir(values: Record<string, unknown>): string {
  const chosen = [values.user === true, typeof values.prefix === "string", values.sysPrefix === true].filter(Boolean).length;
  if (chosen > 1) throw new RangeError("Expected at most one of --user, --prefix, --sys-prefix but received several");
  if (typeof values.prefix === "string") return path.join(path.resolve(values.prefix), "share", "jupyter", "kernels");
  if (values.sysPrefix === true) return path.join(jupyterPython(), "share", "jupyter", "kernels");
  const data = process.env.JUPYTER_DATA_DIR ?? path.join(process.env.XDG_DATA_HOME ?? path.join(os.homedir(), ".local", "share"), "jupyter");
  return path.join(data, "kernels");
}

/** kernel.json for this install: the template with node, package root and version filled in. */
export function kernelJson(displayName: string): Record<string, unknown> {
  const version = (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;
  const text = fs
    .readFileSync(path.join(PACKAGE_ROOT, "kernel.json"), "utf8")
    .replace(/\{node\}/g, process.execPath)
    .replace(/\{package_root\}/g, PACKAGE_ROOT.split(path.sep).join("/"))
    .replace(/\{version\}/g, version);
  const spec = JSON.parse(text) as Record<string, unknown>;
  spec.display_name = displayName;
  return spec;
}

const LOGO = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="10" fill="#3178c6"/><rect x="10" y="14" width="30" height="22" fill="none" stroke="#fff" stroke-width="3"/><rect x="24" y="26" width="30" height="24" fill="none" stroke="#ffd43b" stroke-width="3"/><text x="32" y="60" font-size="9" text-anchor="middle" fill="#fff" font-family="sans-serif">TS</text></svg>`;

export function kernelspecCommand(command: "install" | "uninstall", argv: string[]): number {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage(`retinanet-kernel ${command}`, SCHEMA));
    return 0;
  }
  const { values } = parseArgs(argv, SCHEMA);
  const name = values.name as string;
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new RangeError(`Expected a kernelspec name of letters, digits, '.', '_' or '-' for --name but received ${JSON.stringify(name)}`);
  const dir = path.join(kernelsDir(values), name);
  if (command === "uninstall") {
    if (!fs.existsSync(dir)) {
      console.error(`No kernelspec at ${dir}`);
      return 1;
    }
    fs.rmSync(dir, { recursive: true });
    console.log(`Removed kernelspec ${name} from ${dir}`);
    return 0;
  }
  if (!fs.existsSync(path.join(PACKAGE_ROOT, "dist", "kernel", "main.js"))) {
    throw new Error("Expected the compiled kernel at dist/kernel/main.js; run `npm run build` first");
  }
  makeFolders(dir, values.prefix !== undefined ? "--prefix" : "the kernelspec folder");
  // The logo first: a kernelspec folder is usable once kernel.json is there, and it is written whole.
  writeFileWhole(path.join(dir, "logo-svg.svg"), "the kernelspec folder", LOGO);
  writeFileWhole(path.join(dir, "kernel.json"), "the kernelspec folder", JSON.stringify(kernelJson(values.displayName as string), null, 2) + "\n");
  console.log(`Installed kernelspec ${name} in ${dir}`);
  return 0;
}
