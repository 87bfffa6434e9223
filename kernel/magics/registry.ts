/**
 * The magics registry: each magic is one file exporting `{ name, kind, summary, help, args, run }`;
 * this file parses a magic's arguments against its schema, runs it, and answers %lsmagic and
 * `%name?`. An unknown magic is an error that suggests the closest names.
 */
import type { DisplayFunction, DisplayOptions, ProgressBar } from "../display/api";
import type { Executor } from "../runtime/executor";
import type { Interrupts } from "../session/interrupt";
import { ArgSchema, MagicArgError, ParsedArgs, closest, editDistance, parseArgs, tokenize, usage } from "../args";

export interface MagicContext {
  executor: Executor;
  display: DisplayFunction;
  interrupts: Interrupts;
  registry: MagicRegistry;
  /** Runs text as a cell (TypeScript and magics), returning its last value. */
  runCell(code: string): Promise<{ hasValue: boolean; value?: unknown }>;
  /** Session-wide state that magics share (config, datasets, ...), by key. */
  state: Map<string, unknown>;
}

export interface MagicInvocation {
  /** The raw argument text after the magic's name. */
  args: string;
  /** A cell magic's body (the lines after `%%name`). */
  body?: string;
  cell: boolean;
}

export interface MagicOutput {
  /** The value of the magic (shown as the cell's result when the magic is last). */
  value?: unknown;
}

export interface Magic {
  name: string;
  kind: "line" | "cell" | "both";
  /** One line for %lsmagic. */
  summary: string;
  /** The rest of `%name?`. */
  help: string;
  args: ArgSchema;
  run(ctx: MagicContext, args: ParsedArgs, call: MagicInvocation): Promise<MagicOutput | void>;
}

export class UnknownMagicError extends Error {
  readonly code = "ERR_RK_MAGIC_UNKNOWN";
  constructor(message: string) {
    super(message);
    this.name = "UnknownMagicError";
  }
}

export class MagicRegistry {
  private readonly magics = new Map<string, Magic>();

  register(m: Magic): void {
    this.magics.set(m.name, m);
  }

  get(name: string): Magic | undefined {
    return this.magics.get(name);
  }

  list(): Magic[] {
    return [...this.magics.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Looks a magic up, or throws an error naming the closest ones. */
  require(name: string, cell: boolean): Magic {
    const m = this.magics.get(name);
    if (m && (m.kind === "both" || (m.kind === "cell") === cell)) return m;
    const sigil = cell ? "%%" : "%";
    if (m) {
      throw new UnknownMagicError(`Expected a ${cell ? "cell" : "line"} magic but ${sigil}${name} is a ${m.kind} magic: use ${m.kind === "cell" ? "%%" : "%"}${name}`);
    }
    const names = [...this.magics.keys()];
    const ranked = names
      .map((n) => ({ n, d: editDistance(name.toLowerCase(), n.toLowerCase()) - (n.startsWith(name) || name.startsWith(n) ? 2 : 0) }))
      .sort((a, b) => a.d - b.d)
      .filter((x) => x.d <= Math.max(2, name.length / 2))
      .slice(0, 3)
      .map((x) => `${sigil}${x.n}`);
    const near = ranked.length ? ranked : closest(name, names) ? [`${sigil}${closest(name, names)}`] : [];
    throw new UnknownMagicError(
      `Expected a magic (see %lsmagic) but received ${sigil}${name}${near.length ? `; did you mean ${near.join(", ")}?` : ""}`,
    );
  }

  /** `%name?`: the magic's usage and help text. */
  helpText(name: string): string {
    const m = this.magics.get(name);
    if (!m) return `No magic named ${name}. ${this.lsmagicText()}`;
    const sigil = m.kind === "cell" ? "%%" : "%";
    return `${usage(`${sigil}${m.name}`, m.args)}\n\n${m.summary}\n${m.help ? `\n${m.help}\n` : ""}`;
  }

  lsmagicText(): string {
    const line = this.list().filter((m) => m.kind !== "cell").map((m) => `%${m.name}`);
    const cell = this.list().filter((m) => m.kind !== "line").map((m) => `%%${m.name}`);
    const rows = this.list().map((m) => `  ${(m.kind === "cell" ? "%%" : "%") + m.name}`.padEnd(16) + m.summary);
    return `Available line magics:\n${line.join("  ")}\n\nAvailable cell magics:\n${cell.join("  ") || "(none)"}\n\n${rows.join("\n")}\n\nAppend ? for help (e.g. %time?).`;
  }

  /** Parses and runs one magic. */
  async run(ctx: MagicContext, name: string, call: MagicInvocation): Promise<MagicOutput> {
    const magic = this.require(name, call.cell);
    let parsed: ParsedArgs = { values: {}, pairs: [], extra: [] };
    try {
      if (!magic.args.raw) parsed = parseArgs(tokenize(call.args), magic.args);
    } catch (e) {
      if (e instanceof MagicArgError) {
        e.message = `%${magic.name}: ${e.message}`;
      }
      throw e;
    }
    // A progress bar the magic leaves unfinished when it fails is finished, saying so, so that no
    // bar is left looking as if the work were still running above the error.
    const bars: ProgressBar[] = [];
    const display: DisplayFunction = Object.assign((value: unknown, options?: DisplayOptions) => ctx.display(value, options), ctx.display, {
      progress: (total: number, options?: { label?: string }) => {
        const bar = ctx.display.progress(total, options);
        bars.push(bar);
        return bar;
      },
    });
    try {
      return (await magic.run({ ...ctx, display }, parsed, call)) ?? {};
    } catch (e) {
      const why = (e as Error | undefined)?.name === "KeyboardInterrupt" ? "interrupted" : "stopped by the error below";
      for (const bar of bars) bar.finish(why);
      throw e;
    }
  }
}
