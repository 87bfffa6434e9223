/**
 * NumPy's .npy format (versions 1.0, 2.0, 3.0): a magic string, a Python-literal header dict with
 * descr / fortran_order / shape, then the raw C-order data. Little- and big-endian are read;
 * little-endian is written. Arrays are views on the file's buffer when its alignment allows.
 */
import { DTYPES, DType, NdArray, TypedArray, numel } from "./ndarray";

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

const DESCR_TO_DTYPE: Record<string, DType> = {
  f4: "float32",
  f2: "float16",
  f8: "float64",
  i1: "int8",
  i2: "int16",
  i4: "int32",
  i8: "int64",
  u1: "uint8",
  u2: "uint16",
  u4: "uint32",
  b1: "bool",
};

const DTYPE_TO_DESCR: Record<DType, string> = {
  float32: "<f4",
  float16: "<f2",
  float64: "<f8",
  int8: "|i1",
  int16: "<i2",
  int32: "<i4",
  int64: "<i8",
  uint8: "|u1",
  uint16: "<u2",
  uint32: "<u4",
  bool: "|b1",
};

export class NpyFormatError extends Error {
  readonly code = "ERR_RK_NPY";
  constructor(message: string) {
    super(message);
    this.name = "NpyFormatError";
  }
}

/** Parses one .npy file. `name` appears in error messages. */
export function parseNpy(buf: Buffer, name = "array"): NdArray {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) {
    throw new NpyFormatError(`Expected a .npy file (magic \\x93NUMPY) for ${name} but received ${buf.length} bytes without it`);
  }
  const major = buf[6];
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new NpyFormatError(`Expected a .npy header for ${name} but the file is truncated`);
    headerLen = buf.readUInt32LE(8);
    headerStart = 12;
  } else {
    throw new NpyFormatError(`Expected .npy format version 1, 2 or 3 for ${name} but received ${major}`);
  }
  if (headerStart + headerLen > buf.length) {
    throw new NpyFormatError(`Expected a ${headerLen}-byte .npy header for ${name} but the file is truncated`);
  }
  const header = buf.toString(major === 3 ? "utf8" : "latin1", headerStart, headerStart + headerLen);
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeMatch = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeMatch) {
    throw new NpyFormatError(`Expected descr, fortran_order and shape in the .npy header of ${name} but received ${JSON.stringify(header.trim())}`);
  }
  const byteOrder = descr[1][0];
  const code = /^[<>|=]/.test(descr[1]) ? descr[1].slice(1) : descr[1];
  const dtype = DESCR_TO_DTYPE[code];
  if (!dtype) {
    throw new NpyFormatError(`Expected a numeric dtype (${Object.keys(DESCR_TO_DTYPE).join(", ")}) for ${name} but received '${descr[1]}'`);
  }
  if (fortran[1] === "True") {
    throw new NpyFormatError(`Expected a C-order array for ${name} but received fortran_order=True (save it with np.ascontiguousarray)`);
  }
  const shape = shapeMatch[1]
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => Number(s.replace(/L$/, "")));
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new NpyFormatError(`Expected non-negative integer dimensions for ${name} but received (${shapeMatch[1]})`);
  }
  const { bytes, ctor } = DTYPES[dtype];
  const count = numel(shape);
  const dataStart = headerStart + headerLen;
  const byteLength = count * bytes;
  if (dataStart + byteLength > buf.length) {
    throw new NpyFormatError(
      `Expected ${byteLength} data bytes for ${name} (${dtype} ${JSON.stringify(shape)}) but the file holds ${buf.length - dataStart}: it is truncated`,
    );
  }
  let data: TypedArray;
  const absolute = buf.byteOffset + dataStart;
  if (absolute % bytes === 0) {
    data = new ctor(buf.buffer, absolute, count);
  } else {
    const copy = new Uint8Array(byteLength);
    copy.set(buf.subarray(dataStart, dataStart + byteLength));
    data = new ctor(copy.buffer, 0, count);
  }
  if (byteOrder === ">" && bytes > 1) {
    // Big-endian on disk: swap into a fresh array (never in the caller's buffer).
    const swapped = Buffer.from(buf.subarray(dataStart, dataStart + byteLength));
    if (bytes === 2) swapped.swap16();
    else if (bytes === 4) swapped.swap32();
    else swapped.swap64();
    data = new ctor(swapped.buffer, swapped.byteOffset, count);
  }
  return { dtype, shape, data };
}

/** Serialises an array as .npy version 1.0 (2.0 when the header needs it), little-endian. */
export function formatNpy(a: NdArray): Buffer {
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(", ")})`;
  let header = `{'descr': '${DTYPE_TO_DESCR[a.dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  const v1 = header.length + 11 < 65536;
  const prefix = v1 ? 10 : 12;
  const total = prefix + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const head = Buffer.alloc(prefix + header.length);
  MAGIC.copy(head, 0);
  head[6] = v1 ? 1 : 2;
  head[7] = 0;
  if (v1) head.writeUInt16LE(header.length, 8);
  else head.writeUInt32LE(header.length, 8);
  head.write(header, prefix, "latin1");
  const body = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  return Buffer.concat([head, body]);
}
