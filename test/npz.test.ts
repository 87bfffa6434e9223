/** .npy / .npz reading and writing: round trips, NumPy's ZIP64 members, deflate, damage. */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";

import { ndarray } from "../kernel/postprocess/ndarray";
import { formatNpy, parseNpy } from "../kernel/postprocess/npy";
import { readNpyFolder, readNpz, writeNpz } from "../kernel/postprocess/npz";
import { buildZip, crc32, listZip } from "../kernel/postprocess/zip";
import { GOLDEN_DIR } from "./helpers";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rk-npz-"));

describe("npy and npz", function () {
  it("reads NumPy's own .npz (ZIP64 members, deflated) from the goldens", function () {
    const z = readNpz(path.join(GOLDEN_DIR, "tv_k80_b1_highthr.npz"));
    const cls = z.get("cls_logits")!;
    assert.strictEqual(cls.dtype, "float32");
    assert.deepStrictEqual(cls.shape, [1, 24993, 80]);
    assert.strictEqual(z.get("det0_labels")!.dtype, "int64");
    assert.deepStrictEqual(Array.from(z.get("image_sizes")!.data as Int32Array), [320, 416]);
  });

  it("CRC-32 matches zlib's known value", function () {
    assert.strictEqual(crc32(Buffer.from("123456789")), 0xcbf43926);
    assert.strictEqual(crc32(new Uint8Array(0)), 0);
  });

  for (const compress of [false, true]) {
    it(`round-trips every dtype through a ${compress ? "deflated" : "stored"} .npz`, function () {
      const arrays = {
        f32: ndarray("float32", [2, 3], Float32Array.from([1.5, -2, 3.25, Infinity, NaN, -0])),
        f16: ndarray("float16", [3], Uint16Array.from([0x3c00, 0xc000, 0x7c00])),
        f64: ndarray("float64", [1], Float64Array.from([Math.PI])),
        i64: ndarray("int64", [2], BigInt64Array.from([-5n, 2n ** 40n])),
        i32: ndarray("int32", [1, 1, 2], Int32Array.from([7, -8])),
        u8: ndarray("uint8", [0], new Uint8Array(0)),
        b: ndarray("bool", [2], Uint8Array.from([1, 0])),
      };
      const file = path.join(tmp, `rt-${compress}.npz`);
      writeNpz(file, arrays, { compress });
      const back = readNpz(file);
      for (const [k, a] of Object.entries(arrays)) {
        const b = back.get(k)!;
        assert.strictEqual(b.dtype, a.dtype, k);
        assert.deepStrictEqual(b.shape, a.shape, k);
        assert.deepStrictEqual(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength), Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength), k);
      }
    });
  }

  it("writes a 1-D shape as (n,) and pads the header to 64 bytes", function () {
    const buf = formatNpy(ndarray("int32", [3], Int32Array.from([1, 2, 3])));
    const headerLen = buf.readUInt16LE(8);
    assert.strictEqual((10 + headerLen) % 64, 0);
    assert.match(buf.toString("latin1", 10, 10 + headerLen), /'shape': \(3,\)/);
  });

  it("reads big-endian arrays", function () {
    const header = "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }";
    const pad = 64 - ((10 + header.length + 1) % 64);
    const h = Buffer.from(header + " ".repeat(pad) + "\n", "latin1");
    const head = Buffer.alloc(10);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
    head.writeUInt16LE(h.length, 8);
    const body = Buffer.alloc(8);
    body.writeFloatBE(1.5, 0);
    body.writeFloatBE(-3, 4);
    const a = parseNpy(Buffer.concat([head, h, body]));
    assert.deepStrictEqual(Array.from(a.data as Float32Array), [1.5, -3]);
  });

  it("reads a folder of .npy files", function () {
    const dir = path.join(tmp, "folder");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "a.npy"), formatNpy(ndarray("float32", [1], Float32Array.from([2]))));
    fs.writeFileSync(path.join(dir, "b.npy"), formatNpy(ndarray("int32", [1], Int32Array.from([3]))));
    const m = readNpyFolder(dir);
    assert.deepStrictEqual([...m.keys()], ["a", "b"]);
  });

  it("writes ZIP64 records when asked for more than 65535 members", function () {
    const members = Array.from({ length: 65536 }, (_, i) => ({ name: `m${i}.npy`, data: Buffer.from([i & 255]) }));
    const zip = buildZip(members, false);
    const entries = listZip(zip, "test");
    assert.strictEqual(entries.length, 65536);
    assert.strictEqual(entries[65535].name, "m65535.npy");
  });

  describe("damaged files are clear errors", function () {
    const good = path.join(tmp, "good.npz");
    before(function () {
      writeNpz(good, { x: ndarray("float32", [4], Float32Array.from([1, 2, 3, 4])) }, { compress: true });
    });
    it("a truncated .npz", function () {
      const bad = path.join(tmp, "trunc.npz");
      const buf = fs.readFileSync(good);
      fs.writeFileSync(bad, buf.subarray(0, buf.length - 30));
      assert.throws(() => readNpz(bad), (e: Error & { code?: string }) => e.code === "ERR_RK_ZIP" && /truncated or not a zip/.test(e.message));
    });
    it("a file that is not a zip", function () {
      const bad = path.join(tmp, "notzip.npz");
      fs.writeFileSync(bad, "hello, not a zip at all");
      assert.throws(() => readNpz(bad), /Expected a zip archive \(\.npz\) for .*notzip\.npz/);
    });
    it("a member whose data was altered (CRC)", function () {
      const bad = path.join(tmp, "crc.npz");
      const zip = buildZip([{ name: "x.npy", data: formatNpy(ndarray("float32", [4], Float32Array.from([1, 2, 3, 4]))) }], false);
      zip[zip.indexOf(Buffer.from("NUMPY")) + 80] ^= 0xff;
      fs.writeFileSync(bad, zip);
      assert.throws(() => readNpz(bad), /CRC-32 .* the file is damaged/);
    });
    it("corrupt deflate data", function () {
      const bad = path.join(tmp, "deflate.npz");
      const zip = buildZip([{ name: "x.npy", data: Buffer.alloc(1000, 7) }], true);
      const start = 30 + "x.npy".length;
      zip.fill(0xff, start, start + 4);
      fs.writeFileSync(bad, zip);
      assert.throws(() => readNpz(bad), /inflating it failed|damaged/);
    });
    it("a missing file", function () {
      assert.throws(() => readNpz(path.join(tmp, "nope.npz")), (e: Error & { code?: string }) => e.code === "ERR_RK_FILE" && /ENOENT/.test(e.message));
    });
    it("a .npy whose data is cut short", function () {
      const buf = formatNpy(ndarray("float32", [100], new Float32Array(100)));
      assert.throws(() => parseNpy(buf.subarray(0, buf.length - 4), "x"), /Expected 400 data bytes for x .* truncated/);
    });
    it("a Fortran-order .npy", function () {
      const buf = formatNpy(ndarray("float32", [2, 2], new Float32Array(4)));
      const s = buf.toString("latin1").replace("'fortran_order': False", "'fortran_order': True ");
      assert.throws(() => parseNpy(Buffer.from(s, "latin1"), "x"), /C-order array for x/);
    });
    it("an unsupported dtype", function () {
      const buf = formatNpy(ndarray("float32", [1], new Float32Array(1)));
      const s = buf.toString("latin1").replace("<f4", "<c8");
      assert.throws(() => parseNpy(Buffer.from(s, "latin1"), "x"), /numeric dtype .* but received '<c8'/);
    });
    it("deflate through zlib agrees (sanity of the raw stream)", function () {
      const data = Buffer.from("abcabcabc");
      assert.deepStrictEqual(zlib.inflateRawSync(zlib.deflateRawSync(data)), data);
    });
  });
});
