/**
 * The notebook UI in a browser: Debian's classic Jupyter Notebook on 127.0.0.1 with a token, Debian's
 * Chromium driven by playwright-core; the quickstart is opened, every cell is run through the UI
 * (Cell > Run All), then the page is checked: no error output, the overlay SVG has as many detection
 * boxes as its title says, the Pareto chart is drawn. Screenshots go to out/ (look at them).
 * Skipped, with the reason, only when Chromium is absent.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { PACKAGE_ROOT } from "../kernel/native";
import { JupyterServer, hasPythonModules, installTestKernelspec, startJupyterServer } from "./jupyter-env";

const CHROMIUM = "/usr/bin/chromium";
const OUT = path.join(PACKAGE_ROOT, "out");

describe("the notebook UI in Chromium", function () {
  this.timeout(300000);
  let server: JupyterServer | undefined;
  let root = "";

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      console.log(`      skipped: ${CHROMIUM} is absent (Debian's chromium package; .ci/run installs it)`);
      this.skip();
    }
    if (!hasPythonModules("notebook")) assert.fail("Debian's jupyter-notebook is not installed (.ci/run installs it)");
    const { env } = installTestKernelspec();
    root = fs.mkdtempSync(path.join(os.tmpdir(), "rk-ui-"));
    fs.copyFileSync(path.join(PACKAGE_ROOT, "notebooks", "01-quickstart.ipynb"), path.join(root, "quickstart.ipynb"));
    server = await startJupyterServer(env, root, "notebook");
  });

  after(async () => {
    await server?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it("runs the quickstart through the UI: no errors, the overlay's boxes, the Pareto chart; screenshots in out/", async function () {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { chromium } = require("playwright-core") as typeof import("playwright-core");
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      await page.goto(`${server!.baseUrl}notebooks/quickstart.ipynb?token=${server!.token}`);
      // The kernel has started when the indicator says idle.
      await page.waitForSelector("#kernel_indicator_icon.kernel_idle_icon", { timeout: 90000 });
      // Cell > Run All, as a user does it.
      await page.click("#menus a.dropdown-toggle:text-is('Cell')");
      await page.click("#run_all_cells a");
      // Done when every code cell has a number in its prompt and none shows [*].
      await page.waitForFunction(
        `(() => {
          const prompts = [...document.querySelectorAll(".code_cell .input_prompt")].map((p) => p.textContent || "");
          return prompts.length > 0 && prompts.every((t) => /\\[\\d+\\]/.test(t)) && document.querySelector("#kernel_indicator_icon.kernel_idle_icon") !== null;
        })()`,
        undefined,
        { timeout: 180000, polling: 500 },
      );
      fs.mkdirSync(OUT, { recursive: true });
      await page.screenshot({ path: path.join(OUT, "browser-quickstart.png"), fullPage: true });

      const errors = await page.$$eval(".output_error", (els) => els.map((e) => (e.textContent ?? "").slice(0, 300)));
      assert.deepStrictEqual(errors, [], "no error output");

      // The overlay: "top N of M detections"; N boxes drawn with the detection stroke.
      const overlay = await page.$$eval(".output_svg svg", (svgs) =>
        svgs
          .map((s) => ({ title: s.querySelector("text")?.textContent ?? "", boxes: s.querySelectorAll('rect[stroke-width="1.5"]').length, dashed: s.querySelectorAll("rect[stroke-dasharray]").length }))
          .filter((o) => /detections/.test(o.title)),
      );
      assert.ok(overlay.length >= 1, "an overlay SVG");
      const top = Number(/top (\d+) of (\d+) detections/.exec(overlay[0].title)?.[1]);
      assert.ok(top > 0, overlay[0].title);
      assert.strictEqual(overlay[0].boxes, top, `${overlay[0].title}: ${overlay[0].boxes} boxes drawn`);
      assert.ok(overlay[0].dashed > 0, "ground truth dashed");
      const overlayEl = await page.$(".output_svg svg");
      await overlayEl!.screenshot({ path: path.join(OUT, "browser-overlay.png") });

      // The sweep's chart: the classic UI shows the SVG rendering of the Vega-Lite spec (vega's "marks" root).
      const charts = await page.$$(".output_svg svg.marks, .output_area svg.marks");
      assert.ok(charts.length >= 1, "the Pareto chart is drawn");
      const marks = await charts[charts.length - 1].$$eval("path, circle, .mark-symbol path", (els) => els.length);
      assert.ok(marks > 5, `the chart has marks (${marks})`);
      await charts[charts.length - 1].screenshot({ path: path.join(OUT, "browser-chart.png") });
      console.log(`      ${overlay[0].title}; ${charts.length} chart(s); screenshots in ${path.relative(PACKAGE_ROOT, OUT)}/`);
    } finally {
      await browser.close();
    }
  });
});
