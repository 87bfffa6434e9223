/** %who [TYPE ...]: the names in the cell scope, optionally only those of the given runtime types. */
import { escapeHtml, inspectText } from "../../display/mimebundle";
import { Magic } from "../registry";

export const who: Magic = {
  name: "who",
  kind: "line",
  summary: "list the variables of the session (optionally of some types: %who number Postprocessor)",
  help: "Types are runtime types: number, string, boolean, function, array, or a class name such as Float32Array.\n--long shows a table with each value's type and a short preview.",
  args: { variadic: true, options: [{ name: "long", alias: "l", type: "bool", help: "a table with types and previews" }] },
  async run(ctx, args) {
    const types = args.extra.map((t) => t.toLowerCase());
    const vars = ctx.executor.variables().filter((v) => types.length === 0 || types.includes(v.type.toLowerCase()));
    if (vars.length === 0) {
      process.stdout.write(types.length ? `No variables of type ${args.extra.join(", ")}.\n` : "Interactive namespace is empty.\n");
      return {};
    }
    if (!args.values.long) {
      process.stdout.write(vars.map((v) => v.name).join("\t") + "\n");
      return {};
    }
    const preview = (v: unknown) => inspectText(v).replace(/\s+/g, " ").slice(0, 60);
    const w = Math.max(8, ...vars.map((v) => v.name.length)) + 2;
    const t = Math.max(6, ...vars.map((v) => v.type.length)) + 2;
    const text = [`${"Variable".padEnd(w)}${"Type".padEnd(t)}Data/Info`, "-".repeat(w + t + 20), ...vars.map((v) => `${v.name.padEnd(w)}${v.type.padEnd(t)}${preview(v.value)}`)].join("\n");
    const html = `<table><thead><tr><th>Variable</th><th>Type</th><th>Data/Info</th></tr></thead><tbody>${vars
      .map((v) => `<tr><td><code>${escapeHtml(v.name)}</code></td><td>${escapeHtml(v.type)}</td><td><code>${escapeHtml(preview(v.value))}</code></td></tr>`)
      .join("")}</tbody></table>`;
    ctx.display({ "text/plain": text, "text/html": html });
    return {};
  },
};
