/** N-dimensional arrays as plain objects: a dtype, a shape and a flat TypedArray in C order. */

export type DType =
  | "float32"
  | "float16"
  | "float64"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "bool";

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array;

export interface NdArray<T extends TypedArray = TypedArray> {
  dtype: DType;
  shape: number[];
  data: T;
}

/** Bytes per element and the TypedArray constructor of each dtype (float16 is stored as its bits). */
export const DTYPES: Record<DType, { bytes: number; ctor: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray; new (length: number): TypedArray } }> = {
  float32: { bytes: 4, ctor: Float32Array },
  float16: { bytes: 2, ctor: Uint16Array },
  float64: { bytes: 8, ctor: Float64Array },
  int8: { bytes: 1, ctor: Int8Array },
  int16: { bytes: 2, ctor: Int16Array },
  int32: { bytes: 4, ctor: Int32Array },
  int64: { bytes: 8, ctor: BigInt64Array },
  uint8: { bytes: 1, ctor: Uint8Array },
  uint16: { bytes: 2, ctor: Uint16Array },
  uint32: { bytes: 4, ctor: Uint32Array },
  bool: { bytes: 1, ctor: Uint8Array },
};

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function ndarray<T extends TypedArray>(dtype: DType, shape: number[], data: T): NdArray<T> {
  if (data.length !== numel(shape)) {
    throw new RangeError(`Expected ${numel(shape)} elements for shape [${shape.join(", ")}] but received ${data.length}`);
  }
  return { dtype, shape, data };
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Numbers of an integer or float array as a plain number[] (int64 converted, exact below 2^53). */
export function toNumbers(a: NdArray): number[] {
  const out = new Array<number>(a.data.length);
  for (let i = 0; i < a.data.length; i++) out[i] = Number(a.data[i]);
  return out;
}

/** An int32 view of an integer array (int64 narrowed with a range check). */
export function toInt32(a: NdArray, name: string): Int32Array {
  if (a.data instanceof Int32Array) return a.data;
  if (a.dtype === "float32" || a.dtype === "float64" || a.dtype === "float16") {
    throw new TypeError(`Expected an integer array for ${name} but received ${a.dtype}`);
  }
  const out = new Int32Array(a.data.length);
  for (let i = 0; i < a.data.length; i++) {
    const v = Number(a.data[i]);
    if (v < -2147483648 || v > 2147483647) throw new RangeError(`Expected int32 values for ${name} but received ${v}`);
    out[i] = v;
  }
  return out;
}
