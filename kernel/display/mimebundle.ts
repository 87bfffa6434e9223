/**
 * MIME bundles: how a value is shown. text/plain always (util.inspect), plus the rich bundle an
 * object declares through the `Symbol.for("jupyter.mimebundle")` method (the TypeScript twin of
 * IPython's _repr_mimebundle_).
 */
import * as util from "util";

export type MimeBundle = Record<string, unknown>;

/** Objects that know how to show themselves implement this method. */
export const MIMEBUNDLE = Symbol.for("jupyter.mimebundle");

/** Values marked with this symbol are not shown as a cell's result (display handles, progress bars). */
export const SILENT = Symbol.for("retinanet-kernel.silent");

export function isSilent(v: unknown): boolean {
  return v !== null && typeof v === "object" && (v as Record<symbol, unknown>)[SILENT] === true;
}

export interface RichValue {
  [MIMEBUNDLE](): MimeBundle;
}

export function hasMimeBundle(v: unknown): v is RichValue {
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof (v as Record<symbol, unknown>)[MIMEBUNDLE] === "function";
}

export function inspectText(v: unknown): string {
  return util.inspect(v, { depth: 4, maxArrayLength: 100, maxStringLength: 10000, breakLength: 100, colors: false });
}

/** The bundle of any value: its declared rich bundle (text/plain added if missing), else text/plain. */
export function bundleOf(v: unknown): MimeBundle {
  if (hasMimeBundle(v)) {
    let b: MimeBundle;
    try {
      b = v[MIMEBUNDLE]();
    } catch (e) {
      return { "text/plain": `${inspectText(v)}\n[its mime bundle failed: ${(e as Error).message}]` };
    }
    return b["text/plain"] === undefined ? { ...b, "text/plain": inspectText(v) } : b;
  }
  return { "text/plain": inspectText(v) };
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
