/**
 * is_complete for TypeScript cells (with magic lines): "complete", "incomplete" with the indent of
 * the next line, or "invalid" (a syntax error more lines cannot fix). tslab's isCompleteCode
 * answers only complete/incomplete, so this one reads the parser's diagnostics itself.
 */
import * as ts from "@tslab/typescript-for-tslab";

export interface IsCompleteResult {
  status: "complete" | "incomplete" | "invalid";
  indent?: string;
}

function nextIndent(src: string): string {
  const last = /[^\n]*$/.exec(src)![0];
  const current = /^\s*/.exec(last)![0];
  if (/[{([]\s*$/.test(last.replace(/\/\/.*$/, ""))) return current + "  ";
  return current;
}

/** Lines that are magics (`%name ...`, `%%name`) are not TypeScript: blank them for the parser. */
export function stripMagicLines(src: string): string {
  const lines = src.split("\n");
  if (/^\s*%%/.test(lines.find((l) => l.trim().length > 0) ?? "")) return "";
  return lines.map((l) => (/^\s*%[A-Za-z_]/.test(l) ? "" : l)).join("\n");
}

export function isComplete(src: string): IsCompleteResult {
  const code = stripMagicLines(src);
  if (code.trim().length === 0) return { status: "complete" };
  // Two blank lines at the end force execution, as in IPython.
  if (/\n\s*\n\s*\n$/.test(src)) return { status: "complete" };
  const sf = ts.createSourceFile("cell.ts", code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const diags = (sf as unknown as { parseDiagnostics?: ts.DiagnosticWithLocation[] }).parseDiagnostics ?? [];
  if (diags.length === 0) return { status: "complete" };
  const end = code.trimEnd().length;
  const atEnd = (d: ts.DiagnosticWithLocation) => d.start >= end;
  const message = (d: ts.DiagnosticWithLocation) => ts.flattenDiagnosticMessageText(d.messageText, "\n");
  const unfinished = (d: ts.DiagnosticWithLocation) =>
    (atEnd(d) && / expected\.$/.test(message(d))) || /^Unterminated (template literal|string literal|regular expression literal)/.test(message(d)) || message(d) === "'*/' expected.";
  if (diags.every(unfinished)) return { status: "incomplete", indent: nextIndent(code) };
  return { status: "invalid" };
}
