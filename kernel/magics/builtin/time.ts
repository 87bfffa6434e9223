/**
 * %time CODE / %%time: runs the code once and reports CPU and wall time, as IPython's %time does,
 * plus the TypeScript compiler's share when it is noticeable. The code's value is the result.
 */
import { Magic } from "../registry";

function ms(v: number): string {
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 3 : 1)} ms`;
}

export const time: Magic = {
  name: "time",
  kind: "both",
  summary: "time one execution of a statement (%time CODE) or of a cell (%%time)",
  help: "Prints CPU times (user, sys), wall time and, when over 1 ms, the TypeScript compile time.\nThe code may be TypeScript or other magics; its value is the result of %time.",
  args: { raw: true, positionals: [{ name: "CODE", type: "string", help: "the statement to time (line form)" }] },
  async run(ctx, _args, call) {
    const code = call.cell ? (call.body ?? "") : call.args;
    if (code.trim().length === 0) {
      throw Object.assign(new RangeError(`Expected code to time after %time (or a cell body after %%time) but received nothing`), { code: "ERR_RK_MAGIC_ARGS" });
    }
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    const compileBefore = compileTotal(ctx);
    let result: { hasValue: boolean; value?: unknown } | undefined;
    let error: unknown;
    try {
      result = await ctx.runCell(code);
    } catch (e) {
      error = e;
    }
    const wall = performance.now() - wall0;
    const cpu = process.cpuUsage(cpu0);
    const compile = compileTotal(ctx) - compileBefore;
    const user = cpu.user / 1000;
    const sys = cpu.system / 1000;
    const lines = [`CPU times: user ${ms(user)}, sys: ${ms(sys)}, total: ${ms(user + sys)}`, `Wall time: ${ms(wall)}`];
    if (compile > 1) lines.push(`Compiler time: ${ms(compile)}`);
    process.stdout.write(lines.join("\n") + "\n");
    if (error !== undefined) throw error;
    return result?.hasValue ? { value: result.value } : {};
  },
};

function compileTotal(ctx: { state: Map<string, unknown> }): number {
  return (ctx.state.get("compileMsTotal") as number | undefined) ?? 0;
}
