/**
 * A cell split into what runs in order: TypeScript chunks and magic lines. `%%name args` on the
 * first non-blank line makes the whole cell one cell magic; `%name args` on any line is a line
 * magic; `%name?` asks for the magic's help. Line numbers are kept so that errors point at the cell.
 */

/** The export a cell's last expression is stored under (runtime/converter.ts writes it). */
export const LAST_VALUE = "__rk_last__";

export type Segment =
  | { kind: "ts"; code: string; firstLine: number }
  | { kind: "magic"; name: string; args: string; line: number; help: boolean; body?: string };

const LINE_MAGIC = /^\s*%([A-Za-z_][\w-]*)(\?*)(?:\s+(.*))?\s*$/;
const CELL_MAGIC = /^\s*%%([A-Za-z_][\w-]*)(\?*)(?:\s+(.*))?\s*$/;

export function splitCell(code: string): Segment[] {
  const lines = code.split("\n");
  const first = lines.findIndex((l) => l.trim().length > 0);
  if (first >= 0) {
    const m = CELL_MAGIC.exec(lines[first]);
    if (m) return [{ kind: "magic", name: m[1], args: m[3] ?? "", line: first, help: m[2].length > 0, body: lines.slice(first + 1).join("\n") }];
  }
  const segments: Segment[] = [];
  let chunk: string[] = [];
  let chunkStart = 0;
  const flush = (next: number) => {
    if (chunk.some((l) => l.trim().length > 0)) segments.push({ kind: "ts", code: chunk.join("\n"), firstLine: chunkStart });
    chunk = [];
    chunkStart = next;
  };
  lines.forEach((line, i) => {
    const m = LINE_MAGIC.exec(line);
    if (m) {
      flush(i + 1);
      segments.push({ kind: "magic", name: m[1], args: m[3] ?? "", line: i, help: m[2].length > 0 });
    } else {
      if (chunk.length === 0) chunkStart = i;
      chunk.push(line);
    }
  });
  flush(lines.length);
  return segments;
}

/** The magic name under the cursor, if the cursor is on a magic line's name. */
export function magicAt(code: string, cursor: number): { name: string; start: number; end: number; inArgs: boolean; lineText: string; lineStart: number } | undefined {
  const lineStart = code.lastIndexOf("\n", cursor - 1) + 1;
  let lineEnd = code.indexOf("\n", cursor);
  if (lineEnd < 0) lineEnd = code.length;
  const lineText = code.slice(lineStart, lineEnd);
  const m = /^(\s*)(%{1,2})([A-Za-z_][\w-]*)?/.exec(lineText);
  if (!m) return undefined;
  const start = lineStart + m[1].length + m[2].length;
  const end = start + (m[3]?.length ?? 0);
  return { name: m[3] ?? "", start, end, inArgs: cursor > end, lineText, lineStart };
}
