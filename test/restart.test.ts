/**
 * Restart and lifetime under real clients:
 *  - @jupyterlab/services 7 through a real `jupyter server`: 20 restarts in a row, idle, after an
 *    interrupt of `while (true) {}`, and while such a cell runs; each followed by kernel_info and an
 *    execute that must answer (JupyterLab's "Restart kernel");
 *  - jupyter_client's KernelManager.restart_kernel() (now=False and now=True, idle and running);
 *  - no orphans: when the process that started the kernel dies without a shutdown request, the
 *    kernel exits within a few seconds (it watches JPY_PARENT_PID, as ipykernel does).
 */
import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as path from "path";

import { KernelManager, KernelMessage, ServerConnection } from "@jupyterlab/services";

import { PACKAGE_ROOT } from "../kernel/native";
import { JupyterServer, debianPython, hasPythonModules, installTestKernelspec } from "./jupyter-env";
import { startServices } from "./jupyter-services-env";

const RESTARTS = 20;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`no answer to ${what} within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

describe("restart and lifetime under real clients", function () {
  this.timeout(600000);

  describe("@jupyterlab/services through jupyter server", function () {
    let server: JupyterServer;
    let settings: ServerConnection.ISettings;
    before(async function () {
      ({ server, settings } = await startServices());
    });
    after(async () => server?.stop());

    it(`restarts ${RESTARTS} times in a row (idle, after an interrupt, while a cell runs); every restart answers`, async function () {
      const km = new KernelManager({ serverSettings: settings });
      await km.ready;
      const kernel = await km.startNew({ name: "retinanet-kernel" });
      await kernel.info;
      const lines: string[] = [];
      let ok = 0;
      try {
        for (let i = 0; i < RESTARTS; i++) {
          const mode = (["idle", "interrupted", "running"] as const)[i % 3];
          const t0 = Date.now();
          try {
            const marker = await kernel.requestExecute({ code: `(globalThis as any).beforeRestart = ${i}` }).done;
            assert.strictEqual(marker.content.status, "ok");
            if (mode === "interrupted") {
              const f = kernel.requestExecute({ code: "while (true) {}" });
              await new Promise((r) => setTimeout(r, 300));
              await kernel.interrupt();
              const r = await withTimeout(f.done, 10000, "the interrupted cell");
              assert.strictEqual((r.content as { ename?: string }).ename, "KeyboardInterrupt");
            } else if (mode === "running") {
              const f = kernel.requestExecute({ code: "while (true) {}" });
              f.done.catch(() => undefined); // disposed by the restart
              await new Promise((r) => setTimeout(r, 300));
            }
            await withTimeout(kernel.restart(), 30000, "restart");
            const info = await withTimeout(kernel.requestKernelInfo(), 30000, "kernel_info after the restart");
            assert.strictEqual(info!.content.status, "ok");
            const out: KernelMessage.IIOPubMessage[] = [];
            const f = kernel.requestExecute({ code: "typeof (globalThis as any).beforeRestart" });
            f.onIOPub = (m) => void out.push(m);
            const r = await withTimeout(f.done, 30000, "execute after the restart");
            assert.strictEqual(r.content.status, "ok");
            const result = out.find((m) => m.header.msg_type === "execute_result");
            // A new process: the variable of the last session is gone.
            assert.match((result!.content as { data: Record<string, string> }).data["text/plain"], /^['"]undefined['"]$/);
            ok++;
            lines.push(`restart ${i + 1} (${mode}): ok in ${Date.now() - t0} ms`);
          } catch (e) {
            lines.push(`restart ${i + 1} (${mode}): FAILED after ${Date.now() - t0} ms: ${(e as Error).message.split("\n").join(" ")}`);
          }
        }
      } finally {
        console.log(`      ${lines.join("\n      ")}\n      restarts through @jupyterlab/services: ${ok}/${RESTARTS}`);
        await kernel.shutdown().catch(() => undefined);
        km.dispose();
      }
      assert.strictEqual(ok, RESTARTS, `only ${ok}/${RESTARTS} restarts answered; server log:\n${server.log().slice(-4000)}`);
    });
  });

  describe("jupyter_client", function () {
    let env: NodeJS.ProcessEnv;
    before(function () {
      if (!hasPythonModules("jupyter_client")) assert.fail("Debian's jupyter-client is not installed (.ci/run installs it)");
      env = installTestKernelspec().env;
    });

    it("KernelManager.restart_kernel(): 9 restarts (now=False idle and running, now=True) all answer", function () {
      const r = spawnSync(debianPython()!, [path.join(PACKAGE_ROOT, "test", "python", "jupyter_client_restarts.py"), "retinanet-kernel", "9"], { env, encoding: "utf8", timeout: 300000 });
      const lines = r.stdout.split("\n").filter((l) => l.startsWith("round") || l.startsWith("restarts"));
      console.log(`      ${lines.join("\n      ")}`);
      assert.match(r.stdout, /^restarts: 9\/9$/m, `${r.stdout}\n${r.stderr.slice(-3000)}`);
    });

    it("no orphan: killing the process that started the kernel ends the kernel within a few seconds", async function () {
      const parent = spawn(debianPython()!, [path.join(PACKAGE_ROOT, "test", "python", "orphan_parent.py"), "retinanet-kernel"], { env, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      parent.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      parent.stderr!.on("data", (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 60000;
      while (!/kernel pid (\d+)/.test(out)) {
        if (Date.now() > deadline || parent.exitCode !== null) {
          parent.kill("SIGKILL");
          assert.fail(`the parent did not start a kernel: ${out}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      const pid = Number(/kernel pid (\d+)/.exec(out)![1]);
      const alive = () => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      assert.ok(alive());
      const killedAt = Date.now();
      parent.kill("SIGKILL");
      while (alive() && Date.now() - killedAt < 10000) await new Promise((r) => setTimeout(r, 100));
      const took = Date.now() - killedAt;
      if (alive()) {
        process.kill(pid, "SIGKILL");
        assert.fail(`the kernel ${pid} was still alive 10 s after its parent was killed`);
      }
      console.log(`      the kernel exited ${(took / 1000).toFixed(1)} s after its parent was killed`);
      assert.ok(took < 5000, `took ${took} ms`);
    });
  });
});
