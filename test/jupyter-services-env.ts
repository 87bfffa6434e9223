/**
 * A real `jupyter server` with the kernelspec installed, and the @jupyterlab/services settings that
 * reach it (token, WebSocket from the ws package), for the tests that drive the kernel as
 * JupyterLab does.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { ServerConnection } from "@jupyterlab/services";
import WebSocket from "ws";

import { JupyterServer, hasPythonModules, installTestKernelspec, startJupyterServer } from "./jupyter-env";

export async function startServices(): Promise<{ server: JupyterServer; settings: ServerConnection.ISettings }> {
  if (!hasPythonModules("jupyter_server")) assert.fail("Debian's jupyter-server is not installed (.ci/run installs it)");
  const { env } = installTestKernelspec();
  const server = await startJupyterServer(env, fs.mkdtempSync(path.join(os.tmpdir(), "rk-root-")));
  const settings = ServerConnection.makeSettings({
    baseUrl: server.baseUrl,
    wsUrl: server.baseUrl.replace(/^http/, "ws"),
    token: server.token,
    appendToken: true,
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
  });
  return { server, settings };
}
