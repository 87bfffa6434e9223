/**
 * The retinanet-kernel command line:
 *   retinanet-kernel kernel -f <connection_file>    run the Jupyter kernel (Jupyter starts this)
 *   retinanet-kernel install [--user | --prefix P | --sys-prefix] [--name N] [--display-name D]
 *   retinanet-kernel uninstall [--user | --prefix P | --sys-prefix] [--name N]
 *   retinanet-kernel run --data IN.npz --out OUT.npz [...]   post-process without a notebook
 *   retinanet-kernel cache --data HEADS --out DIR [...]     candidate cache for tuning at scale
 *   retinanet-kernel cache --data HEADS --out DIR [options]   candidate cache (cache --help for options)
  retinanet-kernel eval --annotations GT.json --results RES.json [--json OUT.json]   COCO box AP
 *   retinanet-kernel quickstart                      execute notebooks/01-quickstart.ipynb (npm start)
 *   retinanet-kernel devices                         backends, CPU and CUDA devices
 *   retinanet-kernel --help | --version
 */
import * as fs from "fs";
import * as path from "path";

import { PACKAGE_ROOT } from "./native";

export const VERSION: string = (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;

const HELP = `retinanet-kernel ${VERSION}: a TypeScript Jupyter kernel for RetinaNet post-processing

Usage:
  retinanet-kernel kernel -f <connection_file>   run the kernel (Jupyter starts this)
  retinanet-kernel install [--user | --prefix P | --sys-prefix] [--name N] [--display-name D]
  retinanet-kernel uninstall [--user | --prefix P | --sys-prefix] [--name N]
  retinanet-kernel run --data IN.npz --out OUT.npz [options]   (run --help for options)
  retinanet-kernel cache --data HEADS --out DIR [options]   candidate cache (cache --help for options)
  retinanet-kernel eval --annotations GT.json --results RES.json [--json OUT.json]   COCO box AP (pycocotools' numbers)
  retinanet-kernel quickstart [--out FILE]       execute the quickstart notebook through the kernel
  retinanet-kernel devices                       backends, CPU and CUDA devices
  retinanet-kernel --help | --version`;

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  let code = 0;
  try {
    switch (command) {
      case undefined:
      case "--help":
      case "-h":
      case "help":
        console.log(HELP);
        break;
      case "--version":
      case "-V":
      case "version":
        console.log(VERSION);
        break;
      case "run": {
        const { runCommand } = await import("./postprocess/cli");
        code = await runCommand(rest);
        break;
      }
      case "cache": {
        const { cacheCommand } = await import("./postprocess/cli");
        code = cacheCommand(rest);
        break;
      }
      case "eval": {
        const { evalCommand } = await import("./eval/cli");
        code = evalCommand(rest);
        break;
      }
      case "kernel": {
        const { kernelCommand } = await import("./session/start");
        await kernelCommand(rest);
        return; // the kernel exits the process itself
      }
      case "install":
      case "uninstall": {
        const { kernelspecCommand } = await import("./kernelspec");
        code = kernelspecCommand(command, rest);
        break;
      }
      case "quickstart": {
        const { quickstartCommand } = await import("./quickstart");
        code = await quickstartCommand(rest);
        break;
      }
      case "devices": {
        const { devicesReport } = await import("./postprocess/devices");
        console.log(devicesReport().text);
        break;
      }
      default:
        console.error(`Expected a command (kernel, install, uninstall, run, cache, eval, quickstart, devices) but received ${JSON.stringify(command)}\n\n${HELP}`);
        code = 2;
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    console.error(`retinanet-kernel ${command}: ${err.message}${err.code ? ` [${err.code}]` : ""}`);
    code = 1;
  }
  process.exitCode = code;
}

if (require.main === module) void main(process.argv.slice(2));
