/** %lsmagic: the available magics with one line each. */
import { Magic } from "../registry";

export const lsmagic: Magic = {
  name: "lsmagic",
  kind: "line",
  summary: "list the available magics",
  help: "Each magic has its own help: %name? (or magics.help(\"name\") from code).",
  args: {},
  async run(ctx) {
    const text = ctx.registry.lsmagicText();
    const rows = ctx.registry
      .list()
      .map((m) => `<tr><td><code>${m.kind === "cell" ? "%%" : "%"}${m.name}</code></td><td>${m.summary.replace(/&/g, "&amp;").replace(/</g, "&lt;")}</td></tr>`)
      .join("");
    ctx.display({ "text/plain": text, "text/html": `<table><thead><tr><th>magic</th><th>what it does</th></tr></thead><tbody>${rows}</tbody></table>` });
  },
};
