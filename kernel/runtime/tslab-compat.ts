/**
 * `import * as tslab from "tslab"` in a cell: tslab's display API (display.html, newDisplay, ...)
 * over this kernel's display layer, so notebooks written for tslab keep working. Its types come
 * from tslab's own declarations, which the converter resolves.
 */
import { DisplayHandle, display } from "../display/api";
import { MimeBundle } from "../display/mimebundle";

interface TslabDisplay {
  javascript(s: string): void;
  html(s: string): void;
  markdown(s: string): void;
  latex(s: string): void;
  svg(s: string): void;
  png(b: Uint8Array): void;
  jpeg(b: Uint8Array): void;
  gif(b: Uint8Array): void;
  pdf(b: Uint8Array): void;
  text(s: string): void;
  raw(contentType: string, b: string | Uint8Array): void;
}

function makeDisplay(single: boolean): TslabDisplay {
  let handle: DisplayHandle | undefined;
  const show = (bundle: MimeBundle) => {
    if (single && handle) handle.update(bundle);
    else handle = display(bundle);
  };
  const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
  return {
    javascript: (s) => show({ "application/javascript": s, "text/plain": "[JavaScript]" }),
    html: (s) => show({ "text/html": s, "text/plain": "[HTML]" }),
    markdown: (s) => show({ "text/markdown": s, "text/plain": s }),
    latex: (s) => show({ "text/latex": s, "text/plain": s }),
    svg: (s) => show({ "image/svg+xml": s, "text/plain": "[SVG]" }),
    png: (b) => show({ "image/png": b64(b), "text/plain": "[PNG image]" }),
    jpeg: (b) => show({ "image/jpeg": b64(b), "text/plain": "[JPEG image]" }),
    gif: (b) => show({ "image/gif": b64(b), "text/plain": "[GIF image]" }),
    pdf: (b) => show({ "application/pdf": b64(b), "text/plain": "[PDF]" }),
    text: (s) => show({ "text/plain": s }),
    raw: (type, b) => show({ [type]: typeof b === "string" ? b : b64(b), "text/plain": `[${type}]` }),
  };
}

export function tslabCompat(): Record<string, unknown> {
  return {
    display: makeDisplay(false),
    newDisplay: () => makeDisplay(true),
    versions: { tslab: "retinanet-kernel compatibility layer", typescript: "", node: process.version },
  };
}
