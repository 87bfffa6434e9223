/**
 * Real Jupyter around the tests: the kernelspec installed into a temporary prefix (JUPYTER_PATH
 * points there), and a `jupyter server` on 127.0.0.1 with a token.
 */
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

import { kernelspecCommand } from "../kernel/kernelspec";

/** Installs the kernelspec into a fresh prefix; returns the environment Jupyter tools need. */
export function installTestKernelspec(): { prefix: string; env: NodeJS.ProcessEnv } {
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), "rk-jupyter-"));
  const log = console.log;
  console.log = () => undefined;
  try {
    kernelspecCommand("install", ["--prefix", prefix]);
  } finally {
    console.log = log;
  }
  const env = { ...process.env, JUPYTER_PATH: path.join(prefix, "share", "jupyter"), JUPYTER_RUNTIME_DIR: path.join(prefix, "runtime"), PYDEVD_DISABLE_FILE_VALIDATION: "1" };
  return { prefix, env };
}

export function debianPython(): string | undefined {
  return fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : undefined;
}

export function hasPythonModules(...mods: string[]): boolean {
  const py = debianPython();
  if (!py) return false;
  const r = require("child_process").spawnSync(py, ["-c", mods.map((m) => `import ${m}`).join("; ")], { encoding: "utf8" });
  return r.status === 0;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface JupyterServer {
  baseUrl: string;
  token: string;
  proc: ChildProcess;
  log: () => string;
  stop(): Promise<void>;
}

/**
 * `app` "server": Debian's jupyter_server (what JupyterLab's client library talks to);
 * "notebook": Debian's classic Jupyter Notebook 6 (its UI, for the browser test).
 */
export async function startJupyterServer(env: NodeJS.ProcessEnv, rootDir: string, app: "server" | "notebook" = "server"): Promise<JupyterServer> {
  const port = await freePort();
  const token = crypto.randomBytes(16).toString("hex");
  let log = "";
  const proc = spawn(
    debianPython()!,
    app === "server"
      ? ["-m", "jupyter_server", "--no-browser", ...(process.getuid?.() === 0 ? ["--allow-root"] : []), "--ServerApp.ip=127.0.0.1", `--ServerApp.port=${port}`, `--ServerApp.token=${token}`, `--ServerApp.root_dir=${rootDir}`, "--ServerApp.port_retries=0"]
      : ["-m", "notebook", "--no-browser", ...(process.getuid?.() === 0 ? ["--allow-root"] : []), "--NotebookApp.ip=127.0.0.1", `--NotebookApp.port=${port}`, `--NotebookApp.token=${token}`, `--NotebookApp.notebook_dir=${rootDir}`, "--NotebookApp.port_retries=0"],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  proc.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const baseUrl = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 60000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`jupyter server exited: ${log}`);
    try {
      const r = await fetch(`${baseUrl}api/status`, { headers: { Authorization: `token ${token}` } });
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`jupyter server did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    baseUrl,
    token,
    proc,
    log: () => log,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once("exit", () => resolve());
        proc.kill("SIGTERM");
        setTimeout(() => proc.kill("SIGKILL"), 5000).unref();
      }),
  };
}
