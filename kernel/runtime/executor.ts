/**
 * Runs TypeScript chunks: the compiler thread turns a chunk into CommonJS that reads earlier cells'
 * values from the shared `exports` object, plus the declarations the next chunk is checked against
 * (runtime/converter.ts); this executor runs that code. It replaces tslab's executor because a
 * kernel needs what that one does not do: the last expression's value returned (for
 * execute_result, not printed to stdout), interrupts raced against every await, values bound by
 * magics (declared for the type checker too), and a `require` that knows this kernel's modules.
 */
import * as Module from "module";
import * as path from "path";
import * as vm from "vm";

import type { CompilerClient } from "./compiler";
import { LAST_VALUE } from "./cell";
import { TypeScriptError } from "./errors";
import type { Interrupts } from "../session/interrupt";

export interface RunResult {
  hasValue: boolean;
  value?: unknown;
  /** Milliseconds in the TypeScript compiler and in the code itself. */
  compileMs: number;
  runMs: number;
}

export interface ExecutorOptions {
  cwd?: string;
  /** Module ids require() resolves to these objects (e.g. "tslab", "retinanet-kernel"). */
  modules?: Record<string, unknown>;
}

const SCOPE_GLOBAL = "__rk_cell_scope__";

export class Executor {
  /** The cell scope: every top-level name of every cell, by name. */
  readonly exports: Record<string, unknown>;
  /** Declarations of earlier cells (for the type checker). */
  prevDecl = "";
  private readonly values: Record<string, unknown> = {};
  private cellCounter = 0;

  constructor(
    private readonly compiler: CompilerClient,
    private readonly interrupts: Interrupts,
    options: ExecutorOptions = {},
  ) {
    const values = this.values;
    // tslab's output defines named imports with defineProperty; keep them as plain writable values.
    this.exports = new Proxy(values, {
      defineProperty: (_t, prop, attrs) => {
        if (prop === "__esModule") return true;
        values[prop as string] = attrs.get ? attrs.get() : attrs.value;
        return true;
      },
    });
    const base = Module.createRequire(path.join(options.cwd ?? process.cwd(), "__cell__.js"));
    const modules = options.modules ?? {};
    const cellRequire = new Proxy(base, {
      apply: (_t, thisArg, args: unknown[]) => (typeof args[0] === "string" && args[0] in modules ? modules[args[0]] : Reflect.apply(base, thisArg, args)),
    });
    (globalThis as Record<string, unknown>)[SCOPE_GLOBAL] = { exports: this.exports, require: cellRequire };
  }

  /** Compiles and runs one chunk; `firstLine` is its first line in the cell (for errors). */
  async runTs(code: string, firstLine: number, label = `cell ${this.cellCounter + 1}`): Promise<RunResult> {
    const t0 = performance.now();
    const conv = await this.interrupts.race(this.compiler.convert(this.prevDecl, code));
    const compileMs = performance.now() - t0;
    if (conv.diagnostics.some((d) => d.category === 1)) throw TypeScriptError.fromDiagnostics(conv.diagnostics, code, firstLine);
    if (!conv.output) {
      this.prevDecl = conv.declOutput ?? this.prevDecl;
      return { hasValue: false, compileMs, runMs: 0 };
    }
    const t1 = performance.now();
    const prefix = conv.hasToplevelAwait ? "(async function (exports, require) { " : "(function (exports, require) { ";
    const source = `${prefix}${conv.output}\n})(globalThis.${SCOPE_GLOBAL}.exports, globalThis.${SCOPE_GLOBAL}.require)`;
    this.cellCounter++;
    const script = new vm.Script(source, { filename: `[${label}]` });
    // breakOnSigint: SIGINT stops the synchronous part (a `while (true) {}`) with an error.
    const ret: unknown = script.runInThisContext({ breakOnSigint: true });
    if (conv.hasToplevelAwait) await this.interrupts.race(ret as Promise<unknown>);
    const runMs = performance.now() - t1;
    if (process.env.RK_TRACE === "1") process.emitWarning(`convert ${compileMs.toFixed(2)} ms, run ${runMs.toFixed(2)} ms`, { code: "RK_TRACE" });
    this.prevDecl = conv.declOutput ?? this.prevDecl;
    if (conv.hasLastValue && LAST_VALUE in this.values) {
      const value = this.values[LAST_VALUE];
      delete this.values[LAST_VALUE];
      return { hasValue: value !== undefined, value, compileMs, runMs };
    }
    return { hasValue: false, compileMs, runMs };
  }

  /**
   * Names the prelude declares (display, rk, ...), also in the cell scope, non-enumerable so that
   * %who lists only the user's own names (code compiled by tslab's converter reads them there).
   */
  definePrelude(name: string, descriptor: PropertyDescriptor): void {
    Object.defineProperty(this.values, name, { ...descriptor, enumerable: false, configurable: true });
  }

  /** Puts a value into the cell scope under `name`, declared to TypeScript as `typeText`. */
  bind(name: string, value: unknown, typeText = "any"): void {
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) {
      throw Object.assign(new RangeError(`Expected an identifier for the variable name but received ${JSON.stringify(name)}`), { code: "ERR_RK_NAME" });
    }
    this.values[name] = value;
    // Drop an earlier declaration of the name, then declare it again with the new type.
    const escaped = name.replace(/\$/g, "\\$");
    this.prevDecl = this.prevDecl
      .replace(new RegExp(`^declare (?:let|const|var) ${escaped}: [^\\n]*\\n?`, "m"), "")
      .concat(`\ndeclare let ${name}: ${typeText};\n`);
  }

  /** Names in the cell scope with their runtime type. */
  variables(): { name: string; type: string; value: unknown }[] {
    return Object.keys(this.values)
      .filter((k) => k !== LAST_VALUE)
      .sort()
      .map((name) => {
        const v = this.values[name];
        const type = v === null ? "null" : Array.isArray(v) ? "array" : typeof v === "object" ? (v.constructor?.name ?? "object") : typeof v;
        return { name, type, value: v };
      });
  }
}
