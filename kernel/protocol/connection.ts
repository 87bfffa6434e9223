/** Jupyter connection files: ports, transport (tcp or ipc), key and signature scheme. */
import * as fs from "fs";

export interface ConnectionInfo {
  transport: "tcp" | "ipc";
  ip: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  key: string;
  signature_scheme: string;
  kernel_name?: string;
}

export type SocketName = "shell" | "iopub" | "stdin" | "control" | "hb";
export const SOCKET_NAMES: readonly SocketName[] = ["shell", "iopub", "stdin", "control", "hb"];

export class ConnectionError extends Error {
  readonly code = "ERR_RK_CONNECTION";
}

export function parseConnection(text: string, file = "connection file"): ConnectionInfo {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new ConnectionError(`Expected JSON in ${file} but parsing failed: ${(e as Error).message}`);
  }
  const transport = (raw.transport ?? "tcp") as string;
  if (transport !== "tcp" && transport !== "ipc") throw new ConnectionError(`Expected transport "tcp" or "ipc" in ${file} but received ${JSON.stringify(transport)}`);
  const ip = (raw.ip ?? "127.0.0.1") as string;
  if (typeof ip !== "string" || ip.length === 0) throw new ConnectionError(`Expected an ip in ${file} but received ${JSON.stringify(raw.ip)}`);
  const port = (name: SocketName) => {
    const v = raw[`${name}_port`];
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 65535) {
      throw new ConnectionError(`Expected an integer port for ${name}_port in ${file} but received ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const key = raw.key ?? "";
  if (typeof key !== "string") throw new ConnectionError(`Expected a string key in ${file} but received ${typeof key}`);
  const scheme = raw.signature_scheme ?? "hmac-sha256";
  if (typeof scheme !== "string") throw new ConnectionError(`Expected a string signature_scheme in ${file} but received ${typeof scheme}`);
  return {
    transport,
    ip,
    shell_port: port("shell"),
    iopub_port: port("iopub"),
    stdin_port: port("stdin"),
    control_port: port("control"),
    hb_port: port("hb"),
    key,
    signature_scheme: scheme,
    kernel_name: typeof raw.kernel_name === "string" ? raw.kernel_name : undefined,
  };
}

export function readConnectionFile(file: string): ConnectionInfo {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConnectionError(`Expected a readable connection file but received ${JSON.stringify(file)} (${(e as NodeJS.ErrnoException).code})`);
  }
  return parseConnection(text, file);
}

/** The ZMQ endpoint of one channel: tcp://ip:port, or ipc://ip-port as jupyter_client names it. */
export function endpoint(c: ConnectionInfo, name: SocketName): string {
  const port = c[`${name}_port`];
  return c.transport === "tcp" ? `tcp://${c.ip}:${port}` : `ipc://${c.ip}-${port}`;
}
