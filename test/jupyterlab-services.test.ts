/**
 * @jupyterlab/services (KernelManager, SessionManager) talking to the kernel through a real
 * `jupyter server` on 127.0.0.1 with a token: execute, iopub, interrupt over REST, shutdown.
 */
import * as assert from "assert";
import { KernelManager, KernelMessage, ServerConnection, SessionManager } from "@jupyterlab/services";

import { JupyterServer } from "./jupyter-env";
import { startServices } from "./jupyter-services-env";

describe("@jupyterlab/services through jupyter server", function () {
  this.timeout(180000);
  let server: JupyterServer;
  let settings: ServerConnection.ISettings;

  before(async function () {
    ({ server, settings } = await startServices());
  });
  after(async () => server?.stop());

  async function run(kernel: { requestExecute: (c: KernelMessage.IExecuteRequestMsg["content"]) => { onIOPub: (m: KernelMessage.IIOPubMessage) => void; done: Promise<KernelMessage.IExecuteReplyMsg> } }, code: string) {
    const iopub: KernelMessage.IIOPubMessage[] = [];
    const future = kernel.requestExecute({ code });
    future.onIOPub = (m) => iopub.push(m);
    const reply = await future.done;
    return { reply, iopub };
  }

  it("KernelManager: starts the kernel by name, executes code, receives iopub, shuts down", async function () {
    const km = new KernelManager({ serverSettings: settings });
    await km.ready;
    const kernel = await km.startNew({ name: "retinanet-kernel" });
    const info = await kernel.info;
    assert.strictEqual(info.language_info.name, "typescript");
    const { reply, iopub } = await run(kernel, 'console.log("via jupyter server"); 6 * 7');
    assert.strictEqual(reply.content.status, "ok");
    const types = iopub.map((m) => m.header.msg_type);
    assert.deepStrictEqual(types.filter((t) => t !== "status"), ["execute_input", "stream", "execute_result"]);
    assert.strictEqual((iopub.find((m) => m.header.msg_type === "stream")!.content as { text: string }).text, "via jupyter server\n");
    assert.strictEqual(((iopub.find((m) => m.header.msg_type === "execute_result")!.content as { data: Record<string, string> }).data)["text/plain"], "42");

    // interrupt through the server's REST API (interrupt_mode message -> interrupt_request)
    const future = kernel.requestExecute({ code: "while (true) {}" });
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    await kernel.interrupt();
    const r2 = await future.done;
    assert.strictEqual(r2.content.status, "error");
    assert.strictEqual((r2.content as { ename?: string }).ename, "KeyboardInterrupt");
    assert.ok(Date.now() - t0 < 2000);
    const after = await run(kernel, "1 + 1");
    assert.strictEqual(after.reply.content.status, "ok");
    await kernel.shutdown();
    km.dispose();
  });

  it("SessionManager: a notebook session gets our kernel and runs cells", async function () {
    const kernelManager = new KernelManager({ serverSettings: settings });
    const sm = new SessionManager({ kernelManager, serverSettings: settings });
    await sm.ready;
    const session = await sm.startNew({ path: "demo.ipynb", type: "notebook", name: "demo.ipynb", kernel: { name: "retinanet-kernel" } });
    const kernel = session.kernel!;
    const { reply, iopub } = await run(kernel, 'display.html("<i>hi</i>"); "done"');
    assert.strictEqual(reply.content.status, "ok");
    assert.ok(iopub.some((m) => m.header.msg_type === "display_data"));
    await session.shutdown();
    sm.dispose();
    kernelManager.dispose();
  });
});
