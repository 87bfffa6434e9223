/**
 * Errors of cells as the protocol's error content (ename, evalue, traceback): TypeScript diagnostics
 * with cell-relative line:column and the offending line, runtime errors with the kernel's own
 * frames removed, and thrown non-Error values shown as they are.
 */
import * as path from "path";

import { inspectText } from "../display/mimebundle";
import type { CellDiagnostic } from "./converter";

export interface ErrorContent {
  ename: string;
  evalue: string;
  traceback: string[];
}

/** Type errors of a cell, positions relative to the cell (1-based line:column). */
export class TypeScriptError extends Error {
  constructor(
    readonly diagnostics: { line: number; column: number; message: string; code: number; sourceLine: string }[],
  ) {
    const d = diagnostics[0];
    super(`${d.line}:${d.column} ${d.message}`);
    this.name = "TSError";
  }

  static fromDiagnostics(diags: CellDiagnostic[], chunk: string, firstLine: number): TypeScriptError {
    const lines = chunk.split("\n");
    const errors = diags.filter((d) => d.category === 1);
    return new TypeScriptError(
      errors.map((d) => {
        const line = Math.min(Math.max(d.line, 0), lines.length - 1);
        return {
          line: line + firstLine + 1,
          column: d.character + 1,
          message: d.fileName ? `${d.fileName}: ${d.messageText}` : d.messageText,
          code: d.code,
          sourceLine: d.fileName ? "" : (lines[line] ?? ""),
        };
      }),
    );
  }
}

const KERNEL_DIR = path.resolve(__dirname, "..");

/** Stack frames of the user's code: drop the kernel's own and Node's internals. */
function userFrames(stack: string): string[] {
  return stack
    .split("\n")
    .filter((l) => /^\s+at /.test(l))
    .filter((l) => !l.includes(KERNEL_DIR) && !l.includes("node:internal") && !/\(node:/.test(l));
}

export function errorContent(e: unknown): ErrorContent {
  if (e instanceof TypeScriptError) {
    const tb = [`${e.name}: ${e.diagnostics.length} TypeScript error${e.diagnostics.length > 1 ? "s" : ""}`];
    for (const d of e.diagnostics) {
      tb.push(`  line ${d.line}, column ${d.column}: ${d.message} (TS${d.code})`);
      if (d.sourceLine) {
        tb.push(`    ${d.sourceLine}`);
        tb.push(`    ${" ".repeat(Math.max(0, d.column - 1))}^`);
      }
    }
    return { ename: e.name, evalue: e.message, traceback: tb };
  }
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const head = `${e.name}: ${e.message}${typeof code === "string" ? ` [${code}]` : ""}`;
    return { ename: e.name || "Error", evalue: e.message, traceback: [head, ...userFrames(e.stack ?? "")] };
  }
  // `throw 42`, `throw "x"`, `throw {...}`: no Error object, no stack.
  const shown = inspectText(e);
  return { ename: "Uncaught", evalue: shown, traceback: [`Uncaught ${shown} (a thrown value that is not an Error has no stack)`] };
}
