/** %config: show or change the session's post-processing config. */
import { tableBundle } from "../../display/render";
import { Magic } from "../registry";
import { wf, show } from "./workflow-common";

export const config: Magic = {
  name: "config",
  kind: "line",
  summary: "show the post-processing config (changed values marked) or set keys: %config preset=detectron2 score_thresh=0.3",
  help: `Keys: the config's fields (%config lists them).\nValues: numbers, true/false, null, JSON lists ([32,64]), or words. The whole change is validated first: an invalid value changes nothing and says why.\n--reset goes back to the torchvision preset's defaults.`,
  args: { keyValues: true, options: [{ name: "reset", type: "bool", help: "back to the defaults" }] },
  async run(ctx, args) {
    if (args.values.reset) wf().workbench.resetConfig();
    if (args.pairs.length > 0) {
      const values: Record<string, unknown> = {};
      for (const [k, v] of args.pairs) values[k] = wf().parseConfigValue(v);
      const { before, after, changed } = wf().workbench.setConfig(values);
      if (changed.length === 0) {
        process.stdout.write("No value changed.\n");
      } else {
        ctx.display(tableBundle(["key", "was", "now"], changed.map((k) => [k, show(before[k as keyof typeof before]), show(after[k as keyof typeof after])]), { caption: `Changed ${changed.length} value${changed.length > 1 ? "s" : ""}` }));
      }
      return { value: undefined };
    }
    const rows = wf().workbench.configRows();
    ctx.display(
      tableBundle(
        ["key", "value", `${wf().workbench.config.preset} default`],
        rows.map((r) => [r.key, show(r.value), r.changed ? show(r.preset) : ""]),
        { caption: `Post-processing config (preset ${wf().workbench.config.preset}; changed values marked)`, highlight: new Set(rows.flatMap((r, i) => (r.changed ? [i] : []))) },
      ),
    );
    return {};
  },
};
