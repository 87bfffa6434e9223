/**
 * The kernel driven as JupyterLab drives it: @jupyterlab/services talking to a running
 * `jupyter server` (start one with `jupyter server --ServerApp.token=TOKEN`, with the kernelspec
 * installed by `npx retinanet-kernel install --user`). It starts a retinanet-kernel, runs a short
 * tuning session in magics and TypeScript, reads the outputs as a frontend receives them
 * (streams, tables, SVG overlays, charts), interrupts a cell that never ends, restarts the kernel
 * and shuts it down.
 *
 *   node dist/examples/drive_kernel.js --url http://127.0.0.1:8888/ --token TOKEN
 *
 * Needs the development dependencies (@jupyterlab/services, ws), which `npm install` installs.
 */
import { KernelManager, KernelMessage, ServerConnection } from "@jupyterlab/services";
import WebSocket from "ws";

type Kernel = Awaited<ReturnType<KernelManager["startNew"]>>;

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  if (i < 0 || !process.argv[i + 1]) throw new Error(`Expected ${name} VALUE (see the header of examples/drive_kernel.ts) but received none`);
  return process.argv[i + 1];
}

/** Runs a cell; prints what a frontend would show, one line per output. */
async function cell(kernel: Kernel, code: string): Promise<KernelMessage.IExecuteReplyMsg["content"]> {
  console.log(`\n>>> ${code.split("\n")[0]}${code.includes("\n") ? " ..." : ""}`);
  const future = kernel.requestExecute({ code });
  future.onIOPub = (msg) => {
    const c = msg.content as Record<string, any>;
    switch (msg.header.msg_type) {
      case "stream":
        process.stdout.write(String(c.text).replace(/^/gm, "    "));
        break;
      case "display_data":
      case "execute_result": {
        const data = c.data as Record<string, unknown>;
        const kinds = Object.keys(data).filter((k) => k !== "text/plain");
        const text = String(data["text/plain"] ?? "").split("\n")[0].slice(0, 100);
        console.log(`    [${msg.header.msg_type}${kinds.length ? `: ${kinds.join(", ")}` : ""}] ${text}`);
        break;
      }
      case "error":
        console.log(`    [error] ${c.ename}: ${c.evalue}`);
        break;
    }
  };
  const reply = await future.done;
  return reply.content;
}

async function main(): Promise<void> {
  const url = arg("--url");
  const settings = ServerConnection.makeSettings({ baseUrl: url, wsUrl: url.replace(/^http/, "ws"), token: arg("--token"), appendToken: true, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
  const manager = new KernelManager({ serverSettings: settings });
  await manager.ready;
  const kernel = await manager.startNew({ name: process.argv.includes("--name") ? arg("--name") : "retinanet-kernel" });
  const info = await kernel.info;
  console.log(`started ${info.implementation} ${info.implementation_version} (${info.language_info.name} ${info.language_info.version})`);
  try {
    await cell(kernel, "%synth demo --images 2 --size 320x480 --classes 10 --seed 3");
    await cell(kernel, "%config detections_per_img=50 score_thresh=0.1");
    await cell(kernel, "%run --data demo --iterations 3 --show 1 --eval");
    await cell(kernel, "const r = await rk.createPostprocessor(rk.workbench.config).run(demo);\nr.detections.map((d) => d.count)");

    // Interrupt: a cell that never ends, stopped from the frontend.
    const looping = kernel.requestExecute({ code: "while (true) {}" });
    await new Promise((r) => setTimeout(r, 500));
    await kernel.interrupt();
    const stopped = await looping.done;
    console.log(`\ninterrupted: ${stopped.content.status} (${(stopped.content as { ename?: string }).ename})`);

    // Restart: a new process; the session's names are gone.
    await kernel.restart();
    await kernel.requestKernelInfo();
    const after = await cell(kernel, "typeof (globalThis as any).demo");
    console.log(`after the restart: ${after.status}`);
  } finally {
    await kernel.shutdown();
    manager.dispose();
  }
  console.log("shut down");
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exitCode = 1;
});
