/** Magics as TypeScript functions: `await magics.run("%time 1 + 1")`; magics are sugar over this. */
import type { MagicContext, MagicRegistry } from "./registry";

export interface MagicsApi {
  /** Runs one magic line ("%name args" or "name args"); resolves with the magic's value. */
  run(line: string, body?: string): Promise<unknown>;
  /** Names of the available magics. */
  list(): string[];
  /** The help text of a magic. */
  help(name: string): string;
}

export function magicsApi(registry: MagicRegistry, ctx: () => MagicContext): MagicsApi {
  return {
    async run(line: string, body?: string) {
      if (typeof line !== "string") throw Object.assign(new TypeError(`Expected a magic line such as "%time 1 + 1" for magics.run but received ${typeof line}`), { code: "ERR_RK_MAGIC_ARGS" });
      const m = /^\s*(%{0,2})([A-Za-z_][\w-]*)(?:\s+([\s\S]*))?$/.exec(line);
      if (!m) throw Object.assign(new RangeError(`Expected a magic line such as "%time 1 + 1" for magics.run but received ${JSON.stringify(line)}`), { code: "ERR_RK_MAGIC_ARGS" });
      const cell = m[1] === "%%" || body !== undefined;
      const out = await registry.run(ctx(), m[2], { args: m[3] ?? "", body, cell });
      return out.value;
    },
    list: () => registry.list().map((m) => m.name),
    help: (name: string) => registry.helpText(name.replace(/^%+/, "")),
  };
}
