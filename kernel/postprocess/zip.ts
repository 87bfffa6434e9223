/**
 * The subset of the ZIP format that .npz files use: stored and deflated entries, ZIP64 sizes and
 * offsets (NumPy writes every member with ZIP64 extra fields), CRC-32 checked on read. Built on
 * Node's zlib; no package in the registry covered ZIP64 with raw Buffers and sync reads without
 * pulling in far more than this.
 */
import * as zlib from "zlib";

export class ZipFormatError extends Error {
  readonly code = "ERR_RK_ZIP";
  constructor(message: string) {
    super(message);
    this.name = "ZipFormatError";
  }
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;

const CRC_TABLE = (() => {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) t[k * 256 + n] = (t[(k - 1) * 256 + n] >>> 8) ^ t[t[(k - 1) * 256 + n] & 0xff];
  }
  return t;
})();

/** CRC-32 (IEEE), slicing by 8. */
export function crc32(data: Uint8Array): number {
  let c = -1;
  let i = 0;
  const n8 = data.length - (data.length % 8);
  const t = CRC_TABLE;
  for (; i < n8; i += 8) {
    c ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    c =
      t[7 * 256 + (c & 0xff)] ^
      t[6 * 256 + ((c >>> 8) & 0xff)] ^
      t[5 * 256 + ((c >>> 16) & 0xff)] ^
      t[4 * 256 + (c >>> 24)] ^
      t[3 * 256 + data[i + 4]] ^
      t[2 * 256 + data[i + 5]] ^
      t[256 + data[i + 6]] ^
      t[data[i + 7]];
  }
  for (; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflated
  compressedSize: number;
  size: number;
  crc: number;
  localOffset: number;
}

function readU64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError("a ZIP64 size exceeds 2^53 bytes");
  return Number(v);
}

/** Lists the entries of a zip held in memory. `what` names the file in error messages. */
export function listZip(buf: Buffer, what: string): ZipEntry[] {
  // The end-of-central-directory record sits in the last 22 + 65535 bytes.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new ZipFormatError(
      `Expected a zip archive (.npz) for ${what} but found no end-of-central-directory record in its ${buf.length} bytes: the file is truncated or not a zip`,
    );
  }
  let count = buf.readUInt16LE(eocd + 10);
  let cdSize = buf.readUInt32LE(eocd + 12);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== SIG_ZIP64_LOCATOR) throw new ZipFormatError(`Expected a ZIP64 locator in ${what} but found none`);
    const z64 = readU64(buf, loc + 8);
    if (z64 + 56 > buf.length || buf.readUInt32LE(z64) !== SIG_ZIP64_EOCD) throw new ZipFormatError(`Expected a ZIP64 end record in ${what} but found none`);
    count = readU64(buf, z64 + 32);
    cdSize = readU64(buf, z64 + 40);
    cdOffset = readU64(buf, z64 + 48);
  }
  if (cdOffset + cdSize > buf.length) {
    throw new ZipFormatError(`Expected the central directory of ${what} at bytes ${cdOffset}..${cdOffset + cdSize} but the file has ${buf.length}: it is truncated`);
  }
  const entries: ZipEntry[] = [];
  let p = cdOffset;
  for (let e = 0; e < count; e++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== SIG_CENTRAL) throw new ZipFormatError(`Expected central directory entry ${e} of ${what} but the record is damaged`);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    let compressedSize = buf.readUInt32LE(p + 20);
    let size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let localOffset = buf.readUInt32LE(p + 42);
    const name = buf.toString("utf8", p + 46, p + 46 + nameLen);
    // ZIP64 extra field (id 1): the 64-bit values of the fields saturated above, in this order.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = buf.readUInt16LE(x);
      const len = buf.readUInt16LE(x + 2);
      if (id === 1) {
        let q = x + 4;
        if (size === 0xffffffff) { size = readU64(buf, q); q += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = readU64(buf, q); q += 8; }
        if (localOffset === 0xffffffff) { localOffset = readU64(buf, q); q += 8; }
      }
      x += 4 + len;
    }
    entries.push({ name, method, compressedSize, size, crc, localOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** The uncompressed bytes of one entry (a view for stored entries), CRC-checked. */
export function readZipEntry(buf: Buffer, entry: ZipEntry, what: string, checkCrc = true): Buffer {
  const p = entry.localOffset;
  if (p + 30 > buf.length || buf.readUInt32LE(p) !== SIG_LOCAL) {
    throw new ZipFormatError(`Expected the local header of ${entry.name} in ${what} at byte ${p} but found none: the file is damaged`);
  }
  const start = p + 30 + buf.readUInt16LE(p + 26) + buf.readUInt16LE(p + 28);
  if (start + entry.compressedSize > buf.length) {
    throw new ZipFormatError(`Expected ${entry.compressedSize} bytes of ${entry.name} in ${what} but the file ends early: it is truncated`);
  }
  const raw = buf.subarray(start, start + entry.compressedSize);
  let data: Buffer;
  if (entry.method === 0) {
    data = raw;
  } else if (entry.method === 8) {
    try {
      data = zlib.inflateRawSync(raw);
    } catch (e) {
      throw new ZipFormatError(`Expected deflated data for ${entry.name} in ${what} but inflating it failed: ${(e as Error).message}`);
    }
  } else {
    throw new ZipFormatError(`Expected a stored (0) or deflated (8) entry for ${entry.name} in ${what} but received method ${entry.method}`);
  }
  if (data.length !== entry.size) {
    throw new ZipFormatError(`Expected ${entry.size} bytes for ${entry.name} in ${what} but received ${data.length}`);
  }
  if (checkCrc && crc32(data) !== entry.crc) {
    throw new ZipFormatError(`Expected CRC-32 ${entry.crc.toString(16)} for ${entry.name} in ${what} but the data gives ${crc32(data).toString(16)}: the file is damaged`);
  }
  return data;
}

/** Builds a zip of the given members; deflated when `compress`, ZIP64 records where needed. */
export function buildZip(members: { name: string; data: Buffer }[], compress: boolean): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = Buffer.from(m.name, "utf8");
    const body = compress ? zlib.deflateRawSync(m.data) : m.data;
    const crc = crc32(m.data);
    const big = m.data.length >= 0xffffffff || body.length >= 0xffffffff || offset >= 0xffffffff;
    const localExtra = Buffer.alloc(big ? 20 : 0);
    if (big) {
      localExtra.writeUInt16LE(1, 0);
      localExtra.writeUInt16LE(16, 2);
      localExtra.writeBigUInt64LE(BigInt(m.data.length), 4);
      localExtra.writeBigUInt64LE(BigInt(body.length), 12);
    }
    const local = Buffer.alloc(30);
    local.writeUInt32LE(SIG_LOCAL, 0);
    local.writeUInt16LE(big ? 45 : 20, 4);
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(compress ? 8 : 0, 8);
    local.writeUInt32LE(0x00210000, 10); // 1980-01-01 00:00
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(big ? 0xffffffff : body.length, 18);
    local.writeUInt32LE(big ? 0xffffffff : m.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(localExtra.length, 28);
    parts.push(local, name, localExtra, body);

    const cExtra = Buffer.alloc(big ? 28 : 0);
    if (big) {
      cExtra.writeUInt16LE(1, 0);
      cExtra.writeUInt16LE(24, 2);
      cExtra.writeBigUInt64LE(BigInt(m.data.length), 4);
      cExtra.writeBigUInt64LE(BigInt(body.length), 12);
      cExtra.writeBigUInt64LE(BigInt(offset), 20);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(SIG_CENTRAL, 0);
    c.writeUInt16LE(45, 4);
    c.writeUInt16LE(big ? 45 : 20, 6);
    c.writeUInt16LE(0, 8);
    c.writeUInt16LE(compress ? 8 : 0, 10);
    c.writeUInt32LE(0x00210000, 12);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(big ? 0xffffffff : body.length, 20);
    c.writeUInt32LE(big ? 0xffffffff : m.data.length, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(cExtra.length, 30);
    c.writeUInt32LE(big ? 0xffffffff : offset, 42);
    central.push(c, name, cExtra);
    offset += 30 + name.length + localExtra.length + body.length;
  }
  const cd = Buffer.concat(central);
  const z64 = members.length >= 0xffff || offset >= 0xffffffff || cd.length >= 0xffffffff;
  const tail: Buffer[] = [];
  if (z64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(SIG_ZIP64_EOCD, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(members.length), 24);
    rec.writeBigUInt64LE(BigInt(members.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(SIG_ZIP64_LOCATOR, 0);
    locator.writeBigUInt64LE(BigInt(offset + cd.length), 8);
    locator.writeUInt32LE(1, 16);
    tail.push(rec, locator);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(SIG_EOCD, 0);
  end.writeUInt16LE(z64 ? 0xffff : members.length, 8);
  end.writeUInt16LE(z64 ? 0xffff : members.length, 10);
  end.writeUInt32LE(z64 ? 0xffffffff : cd.length, 12);
  end.writeUInt32LE(z64 ? 0xffffffff : offset, 16);
  return Buffer.concat([...parts, cd, ...tail, end]);
}
