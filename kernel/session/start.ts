/**
 * `retinanet-kernel kernel -f <connection_file>`: starts the I/O thread (sockets) and the compiler
 * thread (TypeScript) side by side, then the session on the main thread. kernel_info is answered as
 * soon as the sockets are bound; the first cell waits for the compiler if it is still loading.
 */
import { randomUUID } from "crypto";
import * as v8 from "v8";

import { readConnectionFile } from "../protocol/connection";
import { ZmqTransport } from "../protocol/transport";
import { CompilerClient } from "../runtime/compiler";
import { preludeDeclarations } from "../runtime/prelude";
import { Kernel, kernelInfoContent } from "./kernel";
import { kernelLog } from "../log";

export async function kernelCommand(argv: string[]): Promise<void> {
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "-f" || argv[i] === "--connection-file") file = argv[++i];
    else if (argv[i].startsWith("--connection-file=")) file = argv[i].slice("--connection-file=".length);
    else if (!argv[i].startsWith("-")) file = argv[i];
  }
  if (!file) throw new Error("Expected -f <connection_file> (Jupyter passes it) but received none");
  const connection = readConnectionFile(file);
  const session = randomUUID();
  // V8's compilation cache keeps every compiled source for reuse; each cell is a new source (about
  // 1.3 KB kept per cell, measured: the main thread's old space grew 6.4 -> 16.9 MB over 8,000
  // trivial cells after full collections, and stayed at 5.1 -> 5.8 MB without the cache). A kernel
  // compiles each cell once, so nothing is lost by turning it off.
  v8.setFlagsFromString("--no-compilation-cache");
  // Loop interrupts past SIGINT's reach need Node's async-hooks checks off (see protocol/io-thread.ts).
  const canTerminate = process.execArgv.includes("--no-force-async-hooks-checks");
  const compiler = new CompilerClient(preludeDeclarations());
  const transport = new ZmqTransport(connection, session, kernelInfoContent(), canTerminate);
  await transport.ready;
  transport.watchAsyncHooks();
  const kernel = new Kernel({
    transport,
    compiler,
    session,
    busy: transport,
    captureOutput: true,
    // The I/O thread has answered the shutdown (reply and idle sent): close the wire, end the threads, exit.
    // Bounded: the I/O thread ends the process itself if this does not finish (io-thread.ts).
    onShutdown: () => {
      void (async () => {
        await Promise.race([compiler.close(), new Promise((r) => setTimeout(r, 500))]);
        await transport.close();
        kernel.exitProcess(0);
      })();
    },
  });
  kernel.installProcessHooks();
  if (!canTerminate) kernelLog("[retinanet-kernel] started without --no-force-async-hooks-checks: interrupts reach top-level code and awaits, not loops inside callbacks\n");
  kernel.status("starting");
  kernel.status("idle");
  compiler.ready.catch((e: Error) => kernelLog(`[retinanet-kernel] the TypeScript compiler failed to start: ${e.message}\n`));
}
