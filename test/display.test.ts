/** The display API's bundles, ids and progress bar, against a recording publisher (no kernel). */
import * as assert from "assert";

import { clearOutput, display, isMimeBundle, setPublisher } from "../kernel/display/api";
import { MIMEBUNDLE, bundleOf, isSilent } from "../kernel/display/mimebundle";

type Event = { kind: string; bundle?: Record<string, unknown>; id?: string; wait?: boolean };

describe("display API", function () {
  const events: Event[] = [];
  before(() =>
    setPublisher({
      display: (bundle, _m, id) => events.push({ kind: "display", bundle, id }),
      update: (bundle, _m, id) => events.push({ kind: "update", bundle, id }),
      clear: (wait) => events.push({ kind: "clear", wait }),
    }),
  );
  beforeEach(() => events.splice(0));
  after(() => setPublisher(undefined));

  it("typed helpers make the right MIME bundles, with text/plain fallbacks", function () {
    display.html("<b>x</b>");
    display.svg("<svg/>");
    display.png(new Uint8Array([1, 2, 3]));
    display.json({ a: 1 });
    display.markdown("# t");
    display.vegalite({ mark: "point" }, { svg: "<svg/>", text: "chart" });
    assert.deepStrictEqual(events.map((e) => Object.keys(e.bundle!).sort()), [
      ["text/html", "text/plain"],
      ["image/svg+xml", "text/plain"],
      ["image/png", "text/plain"],
      ["application/json", "text/plain"],
      ["text/markdown", "text/plain"],
      ["application/vnd.vegalite.v5+json", "image/svg+xml", "text/plain"],
    ]);
    assert.strictEqual(events[2].bundle!["image/png"], "AQID");
  });

  it("display(bundle) passes a MIME bundle through; display(value) uses its text or its declared bundle", function () {
    display({ "text/html": "<i>i</i>", "text/plain": "i" });
    display([1, 2]);
    display({ [MIMEBUNDLE]: () => ({ "text/html": "<u>rich</u>" }) });
    assert.deepStrictEqual(events[0].bundle, { "text/html": "<i>i</i>", "text/plain": "i" });
    assert.deepStrictEqual(events[1].bundle, { "text/plain": "[ 1, 2 ]" });
    assert.strictEqual(events[2].bundle!["text/html"], "<u>rich</u>");
    assert.ok(isMimeBundle({ "text/plain": "x" }) && !isMimeBundle({ plain: 1 }) && !isMimeBundle(new Map()));
  });

  it("handles update their display by id; display.update does too; handles are not cell results", function () {
    const h = display.text("one", { displayId: "fixed" });
    h.update("two");
    display.update("fixed", { "text/plain": "three" });
    assert.deepStrictEqual(events.map((e) => [e.kind, e.id]), [["display", "fixed"], ["update", "fixed"], ["update", "fixed"]]);
    assert.ok(isSilent(h));
  });

  it("clearOutput(wait) publishes clear_output", function () {
    clearOutput(true);
    assert.deepStrictEqual(events, [{ kind: "clear", wait: true }]);
  });

  it("a progress bar updates one display in place, throttled, and always shows the end", function () {
    const bar = display.progress(1000, { label: "work" });
    for (let i = 1; i <= 1000; i++) bar.update(i);
    bar.finish("ok");
    const ids = new Set(events.map((e) => e.id));
    assert.strictEqual(ids.size, 1);
    assert.ok(events.length < 20, `${events.length} messages for 1000 updates`);
    const last = events[events.length - 1].bundle!;
    assert.match(String(last["text/plain"]), /^work \[#{30}\] 1000\/1000 \([\d.]+ s\) ok$/);
    assert.match(String(last["text/html"]), /<progress value="1000" max="1000"/);
    assert.ok(isSilent(bar));
  });

  it("a bundle method that throws still gives text", function () {
    const b = bundleOf({ [MIMEBUNDLE]: () => { throw new Error("nope"); } });
    assert.match(String(b["text/plain"]), /its mime bundle failed: nope/);
  });

  it("wrong argument types are errors naming the call", function () {
    assert.throws(() => display.html(3 as unknown as string), /Expected a string for display\.html but received number/);
    assert.throws(() => display.progress(-1), /Expected a finite number >= 0 for the progress total but received -1/);
  });
});
