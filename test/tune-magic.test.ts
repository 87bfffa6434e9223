/**
 * %tune in a running kernel: thresholds on a synthetic validation set (table, chart, the bound
 * postprocessor with score_thresh_per_class in the session config, --save read back by
 * loadOptimized), %config score_thresh_per_class, bad arguments as errors that leave the kernel and
 * the session as they were, and an interrupt during the latency search (the kernel stays usable).
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { TestKernel } from "./kernel-client";

type Msg = { msg_type: string; content: Record<string, unknown> };
const displays = (iopub: Msg[]) => iopub.filter((m) => m.msg_type === "display_data").map((m) => m.content.data as Record<string, unknown>);
const text = (iopub: Msg[]) => displays(iopub).map((d) => String(d["text/plain"] ?? "")).join("\n");
const stdout = (iopub: Msg[]) => iopub.filter((m) => m.msg_type === "stream").map((m) => String(m.content.text)).join("");

describe("%tune magic", function () {
  this.timeout(300000);
  let k: TestKernel;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-tune-magic-"));
  before(async function () {
    k = await TestKernel.start();
  });
  after(() => {
    k?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("%tune thresholds: the table and chart, the bound postprocessor, the session config, --save", async function () {
    const made = await k.execute(`%synth val --images 60 --size 320x480 --classes 6 --density 0.01 --seed 5 --cache ${JSON.stringify(path.join(dir, "val"))}`);
    assert.strictEqual(made.status, "ok", made.error?.evalue);
    const saved = path.join(dir, "thr.json");
    const r = await k.execute(`%tune thresholds --target precision=0.8 --as thr --save ${saved}`);
    assert.strictEqual(r.status, "ok", r.error?.evalue);
    assert.match(text(r.iopub), /per-class score thresholds for precision >= 0\.8 at IoU 0\.5 over 60 images/);
    assert.ok(displays(r.iopub).some((d) => "application/vnd.vegalite.v5+json" in d), "the precision/recall chart");
    assert.match(stdout(r.iopub), /Bound as thr; the session config now has score_thresh_per_class from the result/);
    const cfg = await k.execute("JSON.stringify(rk.workbench.config.score_thresh_per_class).length > 10 && thr.config.score_thresh_per_class!.length");
    assert.strictEqual(cfg.result!["text/plain"], "6");
    const back = await k.execute(`JSON.stringify(loadOptimized(${JSON.stringify(saved)}).config.score_thresh_per_class) === JSON.stringify(thr.config.score_thresh_per_class)`);
    assert.strictEqual(back.result!["text/plain"], "true");
  });

  it("%config score_thresh_per_class takes an array or a map; a bad one changes nothing", async function () {
    const ok = await k.execute("%config score_thresh_per_class=[0.1,0.2,0.3,0.4,0.5,0.6]");
    assert.strictEqual(ok.status, "ok", ok.error?.evalue);
    const bad = await k.execute("%config score_thresh_per_class=[0.1,2]");
    assert.strictEqual(bad.status, "error");
    assert.match(bad.error!.evalue, /Expected a number in \[0, 1\] for score_thresh_per_class\[1\] but received 2/);
    const still = await k.execute("rk.workbench.config.score_thresh_per_class");
    assert.match(String(still.result!["text/plain"]), /0\.6/);
    // A map, written as JSON (the line's quoting eats its quotes) or with bare label keys; shown as JSON.
    for (const [code, want] of [['%config score_thresh_per_class={"3":0.6}', '{"3":0.6}'], ["%config score_thresh_per_class={3:0.7,1:0.2}", '{"1":0.2,"3":0.7}']]) {
      const map = await k.execute(code);
      assert.strictEqual(map.status, "ok", map.error?.evalue);
      assert.match(text(map.iopub), new RegExp(`score_thresh_per_class\\s+\\S+\\s+${want.replace(/[{}]/g, "\\$&")}`), code);
      assert.strictEqual((await k.execute("JSON.stringify(rk.workbench.config.score_thresh_per_class)")).result!["text/plain"], `'${want}'`, code);
    }
    const notLabel = await k.execute("%config score_thresh_per_class={a:0.6}");
    assert.match(notLabel.error!.evalue, /^Expected valid JSON for a list or map value \(a map's keys may be bare labels: \{3:0\.6\}\) but received \{a:0\.6\}$/);
    await k.execute("%config score_thresh_per_class=null");
  });

  it("bad arguments are errors naming the option; the kernel answers after them", async function () {
    const cases: [string, RegExp][] = [
      ["%tune", /Expected --objective latency \(or %tune thresholds --target \.\.\.\) but received neither/],
      ["%tune --objective latency --keep AP>best", /Expected --keep METRIC>=best-DELTA or METRIC>=VALUE/],
      ["%tune thresholds --target precision=2", /Expected --target precision=P, recall=R \(0 < P, R <= 1\) or f1 but received "precision=2"/],
      ["%tune thresholds --classes 1,x", /Expected labels \(integers >= 0, comma-separated\) for --classes but received "1,x"/],
      ["%tune something", /Expected "thresholds" or nothing before the options of %tune but received "something"/],
      ["%tune --objective latency --over", /Expected key=values after --over/],
      ["%tune --objective latency --over score_thresh=0.01,0.1", /Expected score_thresh >= 0\.05 \(the min_score bound of the candidate cache/],
      ["%tune --objective latency --over scor_thresh=0.1", /did you mean score_thresh\?/],
    ];
    for (const [code, re] of cases) {
      const r = await k.execute(code);
      assert.strictEqual(r.status, "error", code);
      assert.match(r.error!.evalue, re, code);
      // Checked before anything runs (the cache's bounds included): no progress bar was shown.
      assert.deepStrictEqual((r.iopub as Msg[]).filter((m) => m.msg_type === "display_data"), [], code);
    }
    const alive = await k.execute("1 + 1");
    assert.strictEqual(alive.result!["text/plain"], "2");
  });

  it("an interrupt during %tune --objective latency stops it; the kernel stays usable", async function () {
    const id = k.send("shell", "execute_request", { code: "%tune --objective latency --grid", silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: false });
    await k.waitFor(() => k.iopubFor(id).some((m) => m.msg_type === "update_display_data"), 60000);
    k.send("control", "interrupt_request", {});
    await k.waitFor(() => !!k.reply(id), 30000);
    const reply = k.reply(id)!;
    assert.strictEqual(reply.content.status, "error");
    assert.match(`${reply.content.ename}: ${reply.content.evalue}`, /KeyboardInterrupt|Interrupted/);
    const alive = await k.execute("rk.workbench.datasets.has('val')");
    assert.strictEqual(alive.result!["text/plain"], "true");
  });
});
