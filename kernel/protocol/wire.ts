/**
 * The Jupyter wire format (messaging protocol 5.3): identities, "<IDS|MSG>", HMAC signature, header,
 * parent header, metadata, content, buffers. Pure functions: parsing, verification and signing, no
 * sockets and no knowledge of cells.
 */
import * as crypto from "crypto";

export const PROTOCOL_VERSION = "5.3";
const DELIMITER = Buffer.from("<IDS|MSG>");

export interface Header {
  msg_id: string;
  session: string;
  username: string;
  date: string;
  msg_type: string;
  version: string;
  subshell_id?: string;
}

export interface Message<C = Record<string, unknown>> {
  identities: Buffer[];
  header: Header;
  parent_header: Header | Record<string, never>;
  metadata: Record<string, unknown>;
  content: C;
  buffers: Buffer[];
}

/** What the I/O thread hands to the session: a message and where it came from. */
export type Channel = "shell" | "control" | "stdin" | "iopub";

export class WireError extends Error {
  readonly code = "ERR_RK_WIRE";
}

/**
 * Signs and verifies with HMAC as jupyter_client's Session does: signature_scheme "hmac-<digest>"
 * for any digest this Node has (sha256 is Jupyter's default); an empty key turns signing off (the
 * signature frame is empty and not checked). Recently seen signatures are refused, as replays.
 */
export class Signer {
  readonly algorithm: string | null;
  private readonly key: Buffer;
  private readonly seen = new Set<string>();
  private readonly seenOrder: string[] = [];
  private static readonly HISTORY = 1 << 16;

  constructor(key: string, scheme = "hmac-sha256") {
    this.key = Buffer.from(key, "utf8");
    if (this.key.length === 0) {
      this.algorithm = null;
      return;
    }
    if (!scheme.startsWith("hmac-")) {
      throw new WireError(`Expected a signature_scheme of the form "hmac-<digest>" but received ${JSON.stringify(scheme)}`);
    }
    const digest = scheme.slice(5);
    if (!crypto.getHashes().includes(digest)) {
      throw new WireError(`Expected a signature_scheme whose digest Node's crypto has (e.g. hmac-sha256) but received ${JSON.stringify(scheme)}`);
    }
    this.algorithm = digest;
  }

  get enabled(): boolean {
    return this.algorithm !== null;
  }

  sign(parts: Buffer[]): string {
    if (!this.algorithm) return "";
    const h = crypto.createHmac(this.algorithm, this.key);
    for (const p of parts) h.update(p);
    return h.digest("hex");
  }

  /** Constant-time check of a hex signature; refuses replays of a recently seen one. */
  verify(signature: Buffer, parts: Buffer[]): { ok: true } | { ok: false; reason: string } {
    if (!this.algorithm) return { ok: true };
    if (signature.length === 0) return { ok: false, reason: "missing signature" };
    const expected = Buffer.from(this.sign(parts), "utf8");
    if (signature.length !== expected.length || !crypto.timingSafeEqual(signature, expected)) {
      return { ok: false, reason: "invalid signature" };
    }
    const sig = signature.toString("latin1");
    if (this.seen.has(sig)) return { ok: false, reason: "duplicate signature (replayed message)" };
    this.seen.add(sig);
    this.seenOrder.push(sig);
    if (this.seenOrder.length > Signer.HISTORY) this.seen.delete(this.seenOrder.shift()!);
    return { ok: true };
  }
}

function parseJson(frame: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(frame.toString("utf8"));
  } catch (e) {
    throw new WireError(`Expected JSON in the ${what} frame but parsing failed: ${(e as Error).message.slice(0, 120)}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new WireError(`Expected a JSON object in the ${what} frame but received ${typeof v}`);
  return v as Record<string, unknown>;
}

/** Frames of one ZMQ multipart message -> a verified Message, or a WireError saying why not. */
export function parseMessage(frames: Buffer[], signer: Signer): Message {
  const d = frames.findIndex((f) => f.equals(DELIMITER));
  if (d < 0) throw new WireError(`Expected the <IDS|MSG> delimiter among ${frames.length} frames but found none`);
  if (frames.length < d + 6) throw new WireError(`Expected signature, header, parent_header, metadata and content after the delimiter but received ${frames.length - d - 1} frames`);
  const [signature, header, parent, metadata, content] = frames.slice(d + 1, d + 6);
  const check = signer.verify(signature, [header, parent, metadata, content]);
  if (!check.ok) throw new WireError(`Refused a message with a ${check.reason}`);
  const h = parseJson(header, "header");
  if (typeof h.msg_type !== "string" || typeof h.msg_id !== "string") throw new WireError(`Expected msg_type and msg_id in the header but received ${JSON.stringify(h).slice(0, 200)}`);
  return {
    identities: frames.slice(0, d),
    header: h as unknown as Header,
    parent_header: parseJson(parent, "parent_header") as Message["parent_header"],
    metadata: parseJson(metadata, "metadata"),
    content: parseJson(content, "content"),
    buffers: frames.slice(d + 6),
  };
}

/** A Message -> signed frames. */
export function serializeMessage(msg: Omit<Message, "buffers"> & { buffers?: Buffer[] }, signer: Signer): Buffer[] {
  const header = Buffer.from(JSON.stringify(msg.header), "utf8");
  const parent = Buffer.from(JSON.stringify(msg.parent_header ?? {}), "utf8");
  const metadata = Buffer.from(JSON.stringify(msg.metadata ?? {}), "utf8");
  const content = Buffer.from(JSON.stringify(msg.content ?? {}), "utf8");
  const signature = Buffer.from(signer.sign([header, parent, metadata, content]), "utf8");
  return [...msg.identities, DELIMITER, signature, header, parent, metadata, content, ...(msg.buffers ?? [])];
}

export function newHeader(msgType: string, session: string, username = "kernel"): Header {
  return { msg_id: crypto.randomUUID(), session, username, date: new Date().toISOString(), msg_type: msgType, version: PROTOCOL_VERSION };
}
