/**
 * A streaming JSON scanner over a file: reads it in chunks, materializes only the values a caller
 * asks for and skips the rest byte by byte (COCO's segmentation polygons, captions, licenses), so
 * that an 860,000-annotation file is read with memory bounded by what is kept, not by the file.
 *
 * Errors say where: the file, the byte offset, what was expected and what was found. A file that
 * ends inside a value is reported as truncated. `NaN`, `Infinity` and `-Infinity` (which Python's
 * json module writes) are read as numbers so that the caller can name the entry that holds them.
 */
import * as fs from "fs";

const CHUNK = 8 << 20;
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));

export class JsonScanError extends Error {
  readonly code = "ERR_RK_JSON";
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export class JsonScanner {
  private buf: Buffer;
  private pos = 0;
  private end = 0;
  /** File offset of buf[0]. */
  private base = 0;
  private eof = false;
  private readonly fd: number;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, "r");
    this.buf = Buffer.allocUnsafe(CHUNK);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** Byte offset in the file of the next byte. */
  get offset(): number {
    return this.base + this.pos;
  }

  fail(expected: string): never {
    if (this.pos >= this.end && this.eof) throw new JsonScanError(`${this.file}: the JSON ends at byte ${this.offset} where ${expected} was expected (a truncated file?)`);
    const found = this.buf.toString("latin1", this.pos, Math.min(this.end, this.pos + 24)).replace(/\s+/g, " ");
    throw new JsonScanError(`${this.file}: expected ${expected} at byte ${this.offset} but found ${JSON.stringify(found)}`);
  }

  /** Keeps buf[keepFrom..end) and reads more after it; returns how far keepFrom moved. */
  private refill(keepFrom: number): number {
    if (this.eof) return 0;
    const kept = this.end - keepFrom;
    if (kept + CHUNK > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, kept + CHUNK));
      this.buf.copy(bigger, 0, keepFrom, this.end);
      this.buf = bigger;
    } else if (keepFrom > 0) {
      this.buf.copy(this.buf, 0, keepFrom, this.end);
    }
    this.base += keepFrom;
    this.pos -= keepFrom;
    this.end = kept;
    const n = fs.readSync(this.fd, this.buf, this.end, this.buf.length - this.end, null);
    if (n === 0) this.eof = true;
    this.end += n;
    return keepFrom;
  }

  /** The next non-space byte, not consumed; -1 at the end of the file. */
  peek(): number {
    for (;;) {
      while (this.pos < this.end) {
        const c = this.buf[this.pos];
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++;
        else return c;
      }
      if (this.eof) return -1;
      this.refill(this.pos);
    }
  }

  /** Consumes the byte `c` (after spaces) or fails naming it. */
  expect(c: number, what: string): void {
    if (this.peek() !== c) this.fail(what);
    this.pos++;
  }

  /** After a value inside an array or object: true if a ',' follows (consumed), false at `close`. */
  more(close: number): boolean {
    const c = this.peek();
    if (c === 0x2c) {
      this.pos++;
      return true;
    }
    if (c === close) {
      this.pos++;
      return false;
    }
    return this.fail(close === 0x5d ? "',' or ']'" : "',' or '}'");
  }

  /** Begins an array: consumes '[' and says whether it has an element. */
  beginArray(what: string): boolean {
    this.expect(0x5b, `an array (${what})`);
    if (this.peek() === 0x5d) {
      this.pos++;
      return false;
    }
    return true;
  }

  /** Begins an object: consumes '{' and says whether it has a member. */
  beginObject(what: string): boolean {
    this.expect(0x7b, `an object (${what})`);
    if (this.peek() === 0x7d) {
      this.pos++;
      return false;
    }
    return true;
  }

  /**
   * A member's key looked up in `keys` (plain ASCII names) without making a string: its index, or -1
   * for any other key; the ':' after it is consumed.
   */
  keyIndex(keys: readonly Buffer[]): number {
    if (this.peek() !== 0x22) this.fail("a string");
    if (this.end - this.pos < 256 && !this.eof) this.refill(this.pos);
    const buf = this.buf;
    const s = this.pos + 1;
    let e = s;
    while (e < this.end && buf[e] !== 0x22 && buf[e] !== 0x5c) e++;
    if (e >= this.end || buf[e] === 0x5c) {
      // long or escaped: the general path
      const k = this.string();
      this.expect(0x3a, "':'");
      return keys.findIndex((x) => x.toString("latin1") === k);
    }
    let found = -1;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (key.length !== e - s) continue;
      let j = 0;
      while (j < key.length && key[j] === buf[s + j]) j++;
      if (j === key.length) {
        found = i;
        break;
      }
    }
    this.pos = e + 1;
    this.expect(0x3a, "':'");
    return found;
  }

  /** An array of exactly `n` numbers into `out`; false (nothing consumed past it) when it is not one. */
  numbersInto(out: Float64Array, n: number): boolean {
    if (this.peek() !== 0x5b) return false;
    // Enough bytes ahead that number() does not refill (which would move `at`).
    if (this.end - this.pos < 1024 && !this.eof) this.refill(this.pos);
    const at = this.pos;
    this.pos++;
    for (let i = 0; i < n; i++) {
      const c = this.peek();
      if (!((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x4e || c === 0x49)) {
        this.pos = at;
        return false;
      }
      out[i] = this.number();
      if (i < n - 1) {
        if (this.peek() !== 0x2c) {
          this.pos = at;
          return false;
        }
        this.pos++;
      }
    }
    if (this.peek() !== 0x5d) {
      this.pos = at;
      return false;
    }
    this.pos++;
    return true;
  }

  /** A member's key and the ':' after it. */
  key(): string {
    const k = this.string();
    this.expect(0x3a, "':'");
    return k;
  }

  string(): string {
    if (this.peek() !== 0x22) this.fail("a string");
    let start = ++this.pos;
    let escaped = false;
    for (;;) {
      while (this.pos < this.end) {
        const c = this.buf[this.pos];
        if (c === 0x22) {
          const raw = this.buf.toString("utf8", start, this.pos);
          this.pos++;
          if (!escaped) return raw;
          try {
            return JSON.parse(`"${raw}"`) as string;
          } catch {
            return this.fail("a valid string escape");
          }
        }
        if (c === 0x5c) {
          if (this.pos + 1 >= this.end && !this.eof) break; // the escaped byte is in the next chunk
          escaped = true;
          this.pos += 2;
          continue;
        }
        this.pos++;
      }
      if (this.eof) {
        this.pos = this.end;
        return this.fail("the end of a string");
      }
      start -= this.refill(start);
      if (this.pos >= this.end && this.eof) {
        this.pos = this.end;
        return this.fail("the end of a string");
      }
    }
  }

  number(): number {
    const c = this.peek();
    if (c === 0x4e /* N */ || c === 0x49 /* I */ || c === 0x2d /* - */) {
      if (this.end - this.pos < 9 && !this.eof) this.refill(this.pos);
      const w = this.buf.toString("latin1", this.pos, Math.min(this.end, this.pos + 9));
      if (w.startsWith("NaN")) return (this.pos += 3), NaN;
      if (w.startsWith("Infinity")) return (this.pos += 8), Infinity;
      if (w.startsWith("-Infinity")) return (this.pos += 9), -Infinity;
      if (c !== 0x2d) this.fail("a number");
    }
    if (this.end - this.pos < 64 && !this.eof) this.refill(this.pos);
    let start = this.pos;
    // Fast path (Clinger's): up to 15 significant digits and a power of ten up to 1e22 are exact
    // doubles, so one multiplication or division is correctly rounded, as Number() would give.
    {
      const buf = this.buf;
      let p = this.pos;
      const neg = buf[p] === 0x2d;
      if (neg) p++;
      let mant = 0;
      let digits = 0;
      let scale = 0;
      let b = buf[p];
      while (b >= 0x30 && b <= 0x39) {
        mant = mant * 10 + (b - 0x30);
        if (mant !== 0) digits++;
        b = buf[++p];
      }
      if (p > this.pos + (neg ? 1 : 0)) {
        if (b === 0x2e) {
          b = buf[++p];
          const f0 = p;
          while (b >= 0x30 && b <= 0x39) {
            mant = mant * 10 + (b - 0x30);
            if (mant !== 0) digits++;
            b = buf[++p];
          }
          scale = p - f0;
        }
        if (b !== 0x65 && b !== 0x45 && b !== 0x2e && p < this.end && digits <= 15 && scale <= 22) {
          this.pos = p;
          const v = scale === 0 ? mant : mant / POW10[scale];
          return neg ? -v : v;
        }
      }
    }
    for (;;) {
      while (this.pos < this.end) {
        const b = this.buf[this.pos];
        if ((b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2b || b === 0x2e || b === 0x65 || b === 0x45) this.pos++;
        else break;
      }
      if (this.pos < this.end || this.eof) break;
      start -= this.refill(start);
    }
    if (this.pos === start) this.fail("a number");
    const v = Number(this.buf.toString("latin1", start, this.pos));
    if (Number.isNaN(v)) {
      this.pos = start;
      this.fail("a number");
    }
    return v;
  }

  /** Any value, materialized (for small values: an annotation's fields, a category). */
  value(): JsonValue {
    const c = this.peek();
    if (c === 0x22) return this.string();
    if (c === 0x7b) {
      const o: { [k: string]: JsonValue } = {};
      if (this.beginObject("a value")) {
        do {
          const k = this.key();
          o[k] = this.value();
        } while (this.more(0x7d));
      }
      return o;
    }
    if (c === 0x5b) {
      const a: JsonValue[] = [];
      if (this.beginArray("a value")) {
        do a.push(this.value());
        while (this.more(0x5d));
      }
      return a;
    }
    if (c === 0x74) return this.word("true", true);
    if (c === 0x66) return this.word("false", false);
    if (c === 0x6e) return this.word("null", null);
    return this.number();
  }

  private word<T>(w: string, v: T): T {
    if (this.pos + w.length > this.end) this.refill(this.pos);
    if (this.buf.toString("latin1", this.pos, this.pos + w.length) !== w) this.fail(w);
    this.pos += w.length;
    return v;
  }

  /** Skips one value without materializing it. */
  skip(): void {
    const c = this.peek();
    if (c === 0x22) {
      this.skipString();
      return;
    }
    if (c !== 0x7b && c !== 0x5b) {
      this.value();
      return;
    }
    let depth = 0;
    for (;;) {
      while (this.pos < this.end) {
        const b = this.buf[this.pos];
        if (b === 0x22) {
          this.skipString();
          continue;
        }
        this.pos++;
        if (b === 0x7b || b === 0x5b) depth++;
        else if (b === 0x7d || b === 0x5d) {
          if (--depth === 0) return;
        }
      }
      if (this.eof) this.fail("the end of an array or object");
      this.refill(this.pos);
    }
  }

  private skipString(): void {
    this.pos++;
    for (;;) {
      while (this.pos < this.end) {
        const b = this.buf[this.pos];
        if (b === 0x22) {
          this.pos++;
          return;
        }
        if (b === 0x5c && this.pos + 1 >= this.end && !this.eof) break; // the escaped byte is in the next chunk
        this.pos += b === 0x5c ? 2 : 1;
      }
      if (this.eof) {
        this.pos = this.end;
        this.fail("the end of a string");
      }
      this.refill(this.pos);
    }
  }

  /** After the top-level value: only spaces may follow. */
  finish(): void {
    if (this.peek() !== -1) this.fail("the end of the file");
  }
}
