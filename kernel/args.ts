/**
 * Shell-like parsing of magic lines (and of the CLI's argv) into typed values.
 *
 * Tokens: whitespace-separated, 'single' and "double" quotes, backslash escapes.
 * Arguments: positionals, `--opt value` / `--opt=value`, `--flag`, `key=value` pairs.
 * Values: numbers, integers, booleans, choices, sizes `800x1333`, lists `a,b,c`, inclusive ranges
 * `a:b:step`. Every error names the argument, what was expected and what was received.
 */


export class MagicArgError extends Error {
  readonly code = "ERR_RK_MAGIC_ARGS";
  constructor(
    message: string,
    readonly argument?: string,
  ) {
    super(message);
    this.name = "MagicArgError";
  }
}

/** Splits a line into tokens the way a POSIX shell would (no expansion). */
export function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let cur = "";
  let inToken = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) {
        quote = null;
      } else if (ch === "\\" && quote === '"' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) {
        cur += line[++i];
      } else {
        cur += ch;
      }
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      inToken = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      cur += line[++i];
      inToken = true;
    } else if (/\s/.test(ch)) {
      if (inToken) tokens.push(cur);
      cur = "";
      inToken = false;
    } else {
      cur += ch;
      inToken = true;
    }
  }
  if (quote) throw new MagicArgError(`Expected a closing ${quote} but the line ended: ${line}`);
  if (inToken) tokens.push(cur);
  return tokens;
}

export type ValueType = "string" | "number" | "int" | "bool" | "choice" | "size" | "numbers" | "ints";

export interface ArgSpec {
  /** Option name without dashes (`score-thresh`), or the positional's name (`NAME`). */
  name: string;
  type: ValueType;
  help: string;
  choices?: readonly string[];
  default?: unknown;
  required?: boolean;
  min?: number;
  max?: number;
  /** Short alias, e.g. `n` for `-n`. */
  alias?: string;
}

export interface ArgSchema {
  positionals?: ArgSpec[];
  options?: ArgSpec[];
  /** Accept `key=value` pairs (kept as raw strings, in order). */
  keyValues?: boolean;
  /** Accept any number of extra positionals (kept as raw strings). */
  variadic?: boolean;
  /** The magic takes its argument text as is (code), without tokenizing. */
  raw?: boolean;
}

export interface ParsedArgs {
  /** Positionals and options by name (options in camelCase and as written). */
  values: Record<string, unknown>;
  pairs: [string, string][];
  extra: string[];
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

const NUMBER = /^[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|inf(inity)?|nan)$/i;

function parseNumber(raw: string, label: string): number {
  if (!NUMBER.test(raw.trim())) throw new MagicArgError(`Expected a number for ${label} but received ${JSON.stringify(raw)}`, label);
  const t = raw.trim().toLowerCase();
  if (t.endsWith("inf") || t.endsWith("infinity")) return t.startsWith("-") ? -Infinity : Infinity;
  if (t === "nan" || t === "+nan" || t === "-nan") return NaN;
  return Number(raw);
}

/** `a,b,c` or an inclusive range `start:stop:step` (or `start:stop`, step 1), or both mixed. */
export function parseNumberList(raw: string, label: string): number[] {
  const out: number[] = [];
  for (const part of raw.split(",").filter((p) => p.length > 0)) {
    if (part.includes(":")) {
      const bits = part.split(":");
      if (bits.length < 2 || bits.length > 3) throw new MagicArgError(`Expected a range start:stop:step for ${label} but received ${JSON.stringify(part)}`, label);
      const [a, b] = [parseNumber(bits[0], label), parseNumber(bits[1], label)];
      const step = bits.length === 3 ? parseNumber(bits[2], label) : 1;
      if (!(step > 0) || !Number.isFinite(a) || !Number.isFinite(b)) {
        throw new MagicArgError(`Expected a finite range with a step > 0 for ${label} but received ${JSON.stringify(part)}`, label);
      }
      const count = Math.floor((b - a) / step + 1e-9) + 1;
      if (count < 1) throw new MagicArgError(`Expected start <= stop in the range for ${label} but received ${JSON.stringify(part)}`, label);
      if (count > 10000) throw new MagicArgError(`Expected at most 10000 values in the range for ${label} but received ${count}`, label);
      // Round to the step's decimals so 0.4:0.7:0.1 gives 0.4, 0.5, 0.6, 0.7 exactly.
      const decimals = Math.min(12, Math.max(decimalsOf(bits[0]), decimalsOf(bits[2] ?? "1")));
      for (let i = 0; i < count; i++) out.push(Number((a + i * step).toFixed(decimals)));
    } else {
      out.push(parseNumber(part, label));
    }
  }
  if (out.length === 0) throw new MagicArgError(`Expected at least one value for ${label} but received ${JSON.stringify(raw)}`, label);
  return out;
}

function decimalsOf(s: string): number {
  const m = /\.(\d+)/.exec(s);
  return m ? m[1].length : 0;
}

/** Converts one raw string to a spec's type, checking range and choices. */
export function convertValue(raw: string, spec: ArgSpec, label: string): unknown {
  const range = (v: number) => {
    if ((spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)) {
      throw new MagicArgError(`Expected ${spec.type === "int" || spec.type === "ints" ? "an integer" : "a number"} in [${spec.min ?? "-inf"}, ${spec.max ?? "inf"}] for ${label} but received ${raw}`, label);
    }
    return v;
  };
  switch (spec.type) {
    case "string":
      return raw;
    case "number": {
      const v = parseNumber(raw, label);
      if (Number.isNaN(v)) throw new MagicArgError(`Expected a number for ${label} but received ${JSON.stringify(raw)}`, label);
      return range(v);
    }
    case "int": {
      const v = parseNumber(raw, label);
      if (!Number.isInteger(v)) throw new MagicArgError(`Expected an integer for ${label} but received ${JSON.stringify(raw)}`, label);
      return range(v);
    }
    case "bool": {
      const t = raw.toLowerCase();
      if (["true", "1", "yes", "on"].includes(t)) return true;
      if (["false", "0", "no", "off"].includes(t)) return false;
      throw new MagicArgError(`Expected true or false for ${label} but received ${JSON.stringify(raw)}`, label);
    }
    case "choice":
      if (!spec.choices!.includes(raw)) {
        throw new MagicArgError(`Expected one of ${spec.choices!.join(", ")} for ${label} but received ${JSON.stringify(raw)}`, label);
      }
      return raw;
    case "size": {
      const m = /^(\d+)[x×](\d+)$/i.exec(raw);
      if (!m) throw new MagicArgError(`Expected a size HxW (e.g. 800x1333) for ${label} but received ${JSON.stringify(raw)}`, label);
      const size = [Number(m[1]), Number(m[2])];
      size.forEach(range);
      return size;
    }
    case "numbers":
      return parseNumberList(raw, label).map(range);
    case "ints": {
      const list = parseNumberList(raw, label);
      for (const v of list) if (!Number.isInteger(v)) throw new MagicArgError(`Expected integers for ${label} but received ${v}`, label);
      return list.map(range);
    }
  }
}

/** Parses tokens against a schema. Unknown options and missing required arguments are errors. */
export function parseArgs(tokens: string[], schema: ArgSchema): ParsedArgs {
  const options = schema.options ?? [];
  const positionals = schema.positionals ?? [];
  const values: Record<string, unknown> = {};
  const pairs: [string, string][] = [];
  const extra: string[] = [];
  const byName = new Map<string, ArgSpec>();
  for (const o of options) {
    byName.set(o.name, o);
    if (o.alias) byName.set(o.alias, o);
  }
  const set = (spec: ArgSpec, v: unknown) => {
    values[spec.name] = v;
    values[camel(spec.name)] = v;
  };
  let pos = 0;
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i];
    if (tok.startsWith("-") && tok.length > 1 && !NUMBER.test(tok)) {
      const long = tok.startsWith("--");
      let name = tok.slice(long ? 2 : 1);
      let inline: string | undefined;
      const eq = name.indexOf("=");
      if (eq >= 0) {
        inline = name.slice(eq + 1);
        name = name.slice(0, eq);
      }
      const spec = byName.get(name) ?? byName.get(name.replace(/_/g, "-"));
      if (!spec) {
        const known = options.map((o) => `--${o.name}`);
        const nearName = closest(name, options.map((o) => o.name));
        const near = nearName ? `--${nearName}` : undefined;
        throw new MagicArgError(
          `Expected an option (${known.join(", ") || "none"}) but received ${JSON.stringify(tok)}${near ? ` (did you mean ${near}?)` : ""}`,
          name,
        );
      }
      const label = `--${spec.name}`;
      if (spec.type === "bool" && inline === undefined) {
        set(spec, true);
        continue;
      }
      const raw = inline ?? tokens[++i];
      if (raw === undefined) throw new MagicArgError(`Expected a value after ${label} but the line ended`, spec.name);
      set(spec, convertValue(raw, spec, label));
      continue;
    }
    const eq = tok.indexOf("=");
    if (schema.keyValues && eq > 0 && /^[A-Za-z_][\w.]*$/.test(tok.slice(0, eq))) {
      pairs.push([tok.slice(0, eq), tok.slice(eq + 1)]);
      continue;
    }
    if (pos < positionals.length) {
      const spec = positionals[pos++];
      set(spec, convertValue(tok, spec, spec.name));
    } else if (schema.variadic) {
      extra.push(tok);
    } else {
      throw new MagicArgError(
        `Expected ${positionals.length ? `at most ${positionals.length} argument(s) (${positionals.map((p) => p.name).join(", ")})` : "no arguments"}${schema.keyValues ? " and key=value pairs" : ""} but received ${JSON.stringify(tok)}`,
        tok,
      );
    }
  }
  for (const spec of [...positionals, ...options]) {
    if (values[spec.name] === undefined) {
      if (spec.required) {
        const label = positionals.includes(spec) ? spec.name : `--${spec.name}`;
        throw new MagicArgError(`Expected a value for ${label} (${spec.help}) but received none`, spec.name);
      }
      if (spec.default !== undefined) set(spec, spec.default);
    }
  }
  return { values, pairs, extra };
}

/** Usage lines of a schema, for help texts. */
export function usage(prefix: string, schema: ArgSchema): string {
  const parts = [prefix];
  for (const p of schema.positionals ?? []) parts.push(p.required ? p.name : `[${p.name}]`);
  if (schema.keyValues) parts.push("[key=value ...]");
  for (const o of schema.options ?? []) parts.push(o.type === "bool" ? `[--${o.name}]` : `[--${o.name} ${o.type === "choice" ? o.choices!.join("|") : o.type.toUpperCase()}]`);
  const lines = [parts.join(" "), ""];
  for (const p of schema.positionals ?? []) lines.push(`  ${p.name.padEnd(24)} ${p.help}`);
  for (const o of schema.options ?? []) {
    const def = o.default !== undefined ? ` (default ${Array.isArray(o.default) ? o.default.join("x") : String(o.default)})` : "";
    lines.push(`  --${o.name.padEnd(22)} ${o.help}${def}`);
  }
  return lines.join("\n");
}

/** The closest candidate by edit distance, if reasonably close. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 2)) ? best : undefined;
}

export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
