/**
 * The tuning workflow in a running kernel: %config (show, change, invalid values change nothing),
 * %synth / %load / %datasets, %optimize (candidates checked and timed, winner bound, --save and
 * loadOptimized in a fresh kernel), %run (latency, detections, overlay, COCO metrics), %sweep
 * (table, Vega-Lite + SVG chart, Pareto front, interrupt keeps rows), %devices; bad arguments.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { readNpz, writeNpz } from "../kernel/postprocess/npz";
import { TestKernel } from "./kernel-client";
import { GOLDEN_DIR, nativeAvailable } from "./helpers";

type Msg = { msg_type: string; content: Record<string, unknown> };
const displays = (iopub: Msg[]) => iopub.filter((m) => m.msg_type === "display_data").map((m) => m.content.data as Record<string, unknown>);
const text = (iopub: Msg[]) => displays(iopub).map((d) => String(d["text/plain"] ?? "")).join("\n");

describe("workflow magics", function () {
  this.timeout(180000);
  let k: TestKernel;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-wf-"));
  before(async function () {
    k = await TestKernel.start();
  });
  after(() => k?.stop());

  it("%config shows the config with changed values marked, and changes keys", async function () {
    const shown = await k.execute("%config");
    assert.match(text(shown.iopub), /preset torchvision/);
    const changed = await k.execute("%config score_thresh=0.2 detections_per_img=50");
    assert.strictEqual(changed.status, "ok");
    assert.match(text(changed.iopub), /score_thresh\s+0\.05\s+0\.2/);
    const again = await k.execute("%config");
    const t = text(again.iopub);
    assert.match(t, /\* score_thresh\s+0\.2\s+0\.05/, "changed values are marked with the preset's default");
    assert.match(displays(again.iopub)[0]["text/html"] as string, /font-weight:bold/);
  });

  it("%config with an invalid value is an error naming it, and changes nothing", async function () {
    const bad = await k.execute("%config score_thresh=0.3 nms_thresh=1.5");
    assert.strictEqual(bad.status, "error");
    assert.match(bad.error!.evalue, /nms_thresh/);
    assert.match(bad.error!.evalue, /1\.5/);
    const unknown = await k.execute("%config score_thres=0.3");
    assert.match(unknown.error!.evalue, /did you mean score_thresh/);
    const check = await k.execute("rk.workbench.config.score_thresh");
    assert.strictEqual(check.result!["text/plain"], "0.2", "the earlier value stays");
  });

  it("%config preset=detectron2 shows which values changed", async function () {
    const r = await k.execute("%config preset=detectron2");
    const t = text(r.iopub);
    assert.match(t, /preset\s+torchvision\s+detectron2/);
    assert.match(t, /anchor_cell|box_weights|clip|remove_empty/);
    await k.execute("%config --reset");
  });

  it("%synth and %datasets; the dataset is bound in the cell scope", async function () {
    const r = await k.execute("%synth small --images 2 --size 256x320 --classes 6 --density 0.03 --seed 4");
    assert.strictEqual(r.status, "ok");
    assert.match(text(r.iopub), /small\s+2\s+6\s+concatenated\s+float32/);
    const bound = await k.execute("small.gt!.length");
    assert.strictEqual(bound.result!["text/plain"], "2");
    const list = await k.execute("%datasets");
    assert.match(text(list.iopub), /small/);
  });

  it("%load reads a golden case", async function () {
    const file = path.join(GOLDEN_DIR, "tv_k4_b1_dense_nms03.npz");
    if (!fs.existsSync(file)) this.skip();
    const r = await k.execute(`%load dense ${file}`);
    assert.strictEqual(r.status, "ok");
    assert.match(text(r.iopub), /dense\s+1\s+4/);
    const missing = await k.execute("%load nothing /no/such/file.npz");
    assert.strictEqual(missing.status, "error");
    assert.match(missing.error!.evalue, /\/no\/such\/file\.npz/);
  });

  it("%optimize checks and times every candidate, binds the fastest exact one, saves it", async function () {
    const save = path.join(dir, "best.json");
    const r = await k.execute(`%optimize --data small --iterations 3 --as best --save ${save}`);
    assert.strictEqual(r.status, "ok", r.error?.evalue);
    const t = text(r.iopub);
    assert.match(t, /fastest exact = \S+/);
    assert.match(t, /js fp32\s+yes/);
    assert.match(t, /tensorrt fp32\s+unavailable \(below\)/);
    assert.match(t, /\ntensorrt fp32 unavailable: no TensorRT plugins in this build/);
    if (nativeAvailable()) assert.match(t, /\* cpu \d+T fp32\s+yes/);
    const art = JSON.parse(fs.readFileSync(save, "utf8"));
    assert.strictEqual(art.format, "retinanet-kernel/optimized");
    assert.match(art.checksum, /^[0-9a-f]{64}$/);
    const bound = await k.execute("best instanceof rk.Postprocessor");
    assert.strictEqual(bound.result!["text/plain"], "true");
    // A fresh kernel loads it and gets the same detections.
    const fresh = await TestKernel.start();
    try {
      await fresh.execute("%synth small --images 2 --size 256x320 --classes 6 --density 0.03 --seed 4");
      const sum = await fresh.execute(`rk.detectionsChecksum(await loadOptimized(${JSON.stringify(save)}).run(small))`);
      const here = await k.execute("rk.detectionsChecksum(await best.run(small))");
      assert.strictEqual(sum.result!["text/plain"], here.result!["text/plain"]);
    } finally {
      await fresh.stop();
    }
  });

  it("loadOptimized refuses a corrupt or foreign file with a clear error", async function () {
    const save = path.join(dir, "best.json");
    const art = JSON.parse(fs.readFileSync(save, "utf8"));
    fs.writeFileSync(path.join(dir, "edited.json"), JSON.stringify({ ...art, backend: "js" }));
    fs.writeFileSync(path.join(dir, "foreign.json"), JSON.stringify({ hello: 1 }));
    fs.writeFileSync(path.join(dir, "truncated.json"), fs.readFileSync(save, "utf8").slice(0, 100));
    const edited = await k.execute(`loadOptimized(${JSON.stringify(path.join(dir, "edited.json"))})`);
    assert.match(edited.error!.evalue, /checksum/);
    const foreign = await k.execute(`loadOptimized(${JSON.stringify(path.join(dir, "foreign.json"))})`);
    assert.match(foreign.error!.evalue, /Expected format "retinanet-kernel\/optimized"/);
    const truncated = await k.execute(`loadOptimized(${JSON.stringify(path.join(dir, "truncated.json"))})`);
    assert.match(truncated.error!.evalue, /Expected JSON/);
    assert.strictEqual((await k.execute("small.gt!.length")).result!["text/plain"], "2", "session state kept");
  });

  it("%run shows latency, a detections table, an SVG overlay and COCO metrics", async function () {
    const r = await k.execute("%run best --data small --iterations 3 --show 1 --eval");
    assert.strictEqual(r.status, "ok", r.error?.evalue);
    const d = displays(r.iopub);
    assert.match(String(d[0]["text/plain"]), /best\s+\S+\s+2\s+3\s/);
    assert.match(String(d[1]["text/plain"]), /image 0: \d+ detections/);
    assert.match(String(d[2]["image/svg+xml"]), /^<svg[\s\S]*<rect[\s\S]*stroke-dasharray/);
    assert.match(String(d[3]["text/plain"]), /AP\s+AP50\s+AP75[\s\S]*\d\.\d{3}/);
    const notPp = await k.execute("const notPp = 3;\n%run notPp --data small");
    assert.match(notPp.error!.evalue, /Expected a Postprocessor in variable notPp/);
  });

  it("%sweep: table, Vega-Lite chart with an SVG rendering, the Pareto front marked", async function () {
    const r = await k.execute("%sweep score_thresh=0.1,0.5 nms_thresh=0.4:0.6:0.1 --data small --iterations 2");
    assert.strictEqual(r.status, "ok", r.error?.evalue);
    const d = displays(r.iopub);
    const chart = d.find((x) => x["application/vnd.vegalite.v5+json"])!;
    assert.ok(chart, "a Vega-Lite bundle");
    assert.match(String(chart["image/svg+xml"]), /^<svg/);
    assert.match(String(chart["text/plain"]), /^AP vs median latency, 6 of 6 points; Pareto front: score_thresh=\S+ nms_thresh=\S+ \(/);
    const values = (chart["application/vnd.vegalite.v5+json"] as { data: { values: { front: string }[] } }).data.values;
    assert.strictEqual(values.length, 6);
    assert.ok(values.some((v) => v.front === "Pareto front"));
    // progress bar updated in place
    assert.ok(r.iopub.some((m) => m.msg_type === "update_display_data"));
  });

  it("%sweep stops on interrupt and keeps the rows done", async function () {
    const id = k.send("shell", "execute_request", { code: "%sweep score_thresh=0.05:0.95:0.01 --data small --iterations 20", silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: false });
    await k.waitFor(() => k.iopubFor(id).some((m) => m.msg_type === "update_display_data"), 60000);
    k.send("control", "interrupt_request", {});
    await k.waitFor(() => !!k.reply(id), 30000);
    await new Promise((r) => setTimeout(r, 500));
    const out = k.iopubFor(id) as Msg[];
    assert.strictEqual(k.reply(id)!.content.status, "error");
    const t = text(out);
    assert.match(t, /%sweep: \d+ of 91 points \(interrupted\)/);
    assert.strictEqual((await k.execute("small.gt!.length")).result!["text/plain"], "2", "session state kept");
  });

  it("without ground truth: %sweep counts detections (one column), %run --eval is refused before it runs", async function () {
    const file = path.join(GOLDEN_DIR, "tv_k4_b1_dense_nms03.npz");
    if (!fs.existsSync(file)) this.skip();
    const noGt = path.join(dir, "no-gt.npz");
    writeNpz(noGt, new Map([...readNpz(file)].filter(([name]) => !name.startsWith("gt"))));
    assert.strictEqual((await k.execute(`%load nogt ${noGt}`)).status, "ok");
    const sweep = await k.execute("%sweep score_thresh=0.05,0.5 --data nogt --iterations 2");
    assert.strictEqual(sweep.status, "ok", sweep.error?.evalue);
    const table = String(displays(sweep.iopub).find((d) => /^%sweep: 2 of 2 points/.test(String(d["text/plain"])))!["text/plain"]);
    assert.match(table.split("\n")[1], /^\s*score_thresh\s+median\s+detections\s+Pareto\s*$/);
    const run = await k.execute("%run --data nogt --iterations 2 --eval");
    assert.strictEqual(run.status, "error");
    assert.match(run.error!.evalue, /^Expected ground truth \(gt\{i\}_boxes, gt\{i\}_labels, or %load --annotations GT\.json\) in dataset nogt for --eval but it has none$/);
    assert.deepStrictEqual(displays(run.iopub), [], "nothing ran");
  });

  it("bad arguments are errors naming the argument", async function () {
    const cases: [string, RegExp][] = [
      ["%sweep", /key=values/],
      ["%sweep score_thresh=0.1 --data nope", /--data but received "nope"/],
      ["%sweep scre_thresh=0.1", /did you mean score_thresh/],
      ["%sweep score_thresh=0.1 --metric XY --data small", /--metric one of/],
      ["%optimize --iterations 0", /iterations/],
      ["%optimize --backend gpu", /backend/],
      ["%optimize --data small --batch 9", /--batch in \[1, 2\]/],
      ["%synth x --size 10x10", /size/],
      ["%run --data small --show -1", /show/],
    ];
    for (const [code, re] of cases) {
      const r = await k.execute(code);
      assert.strictEqual(r.status, "error", code);
      assert.match(r.error!.evalue, re, code);
    }
  });

  it("%devices reports CPU, CUDA, TensorRT, backends and the addon", async function () {
    const r = await k.execute("%devices");
    const t = text(r.iopub);
    for (const re of [/CPU/, /CUDA/, /TensorRT/, /[Bb]ackends/, /[Aa]ddon/]) assert.match(t, re);
  });
});
