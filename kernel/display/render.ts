/**
 * Rich renderings the workflow magics share: tables (HTML + aligned text), box overlays (SVG), and
 * Vega-Lite charts rendered to SVG with the vega / vega-lite packages (loaded on first use).
 */
import { escapeHtml } from "./mimebundle";

export type MimeBundle = Record<string, unknown>;

export interface TableOptions {
  caption?: string;
  /** Rows to emphasise (bold, marked with * in text). */
  highlight?: Set<number>;
  /** Columns aligned right (numbers); their cells do not wrap. */
  numeric?: Set<number>;
  /** Lines under the table (long explanations that would squeeze its columns). */
  notes?: string[];
}

export function tableBundle(header: string[], rows: string[][], o: TableOptions = {}): MimeBundle {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[], mark: string) =>
    mark + cells.map((c, i) => (o.numeric?.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ");
  const marks = o.highlight && o.highlight.size > 0;
  const text = [
    ...(o.caption ? [o.caption] : []),
    line(header, marks ? "  " : ""),
    ...rows.map((r, i) => line(r, marks ? (o.highlight!.has(i) ? "* " : "  ") : "")),
    ...(o.notes ?? []),
  ].join("\n");
  const cell = (c: string, i: number, tag: string) => `<${tag}${o.numeric?.has(i) ? ' style="text-align:right;white-space:nowrap"' : ""}>${escapeHtml(c)}</${tag}>`;
  const html =
    `<table>${o.caption ? `<caption style="text-align:left">${escapeHtml(o.caption)}</caption>` : ""}` +
    `<thead><tr>${header.map((h, i) => cell(h, i, "th")).join("")}</tr></thead><tbody>` +
    rows.map((r, i) => `<tr${o.highlight?.has(i) ? ' style="font-weight:bold;background:#e8f4e8"' : ""}>${r.map((c, j) => cell(c, j, "td")).join("")}</tr>`).join("") +
    `</tbody></table>` +
    (o.notes && o.notes.length > 0 ? `<div style="font-size:smaller">${o.notes.map((n) => escapeHtml(n)).join("<br>")}</div>` : "");
  return { "text/plain": text, "text/html": html };
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

export interface OverlayBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  label: number;
  score?: number;
}

/** Boxes on the image frame (h x w), scaled to `width` px; detections solid, ground truth dashed. */
/**
 * `image`: a URL or data: URI drawn under the boxes, stretched to the image size the boxes are in
 * (the network input, which keeps the original's aspect ratio).
 */
export function overlaySvg(size: [number, number], detections: OverlayBox[], gt: OverlayBox[] = [], options: { width?: number; title?: string; image?: string } = {}): string {
  const [h, w] = size;
  const W = options.width ?? 480;
  const s = W / w;
  const H = Math.round(h * s);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 18}" viewBox="0 0 ${W} ${H + 18}" font-family="sans-serif" font-size="10">`,
    `<rect x="0" y="18" width="${W}" height="${H}" fill="#f4f4f4" stroke="#888"/>`,
    `<text x="2" y="12">${escapeHtml(options.title ?? `${w}x${h}`)}</text>`,
    `<g transform="translate(0,18)">`,
  ];
  if (options.image) parts.push(`<image href="${escapeHtml(options.image)}" x="0" y="0" width="${W}" height="${H}" preserveAspectRatio="none"/>`);
  for (const b of gt) {
    parts.push(`<rect x="${(b.x1 * s).toFixed(1)}" y="${(b.y1 * s).toFixed(1)}" width="${((b.x2 - b.x1) * s).toFixed(1)}" height="${((b.y2 - b.y1) * s).toFixed(1)}" fill="none" stroke="#000" stroke-dasharray="4 2"/>`);
  }
  for (const b of detections) {
    const c = PALETTE[b.label % PALETTE.length];
    parts.push(`<rect x="${(b.x1 * s).toFixed(1)}" y="${(b.y1 * s).toFixed(1)}" width="${((b.x2 - b.x1) * s).toFixed(1)}" height="${((b.y2 - b.y1) * s).toFixed(1)}" fill="none" stroke="${c}" stroke-width="1.5"/>`);
    parts.push(`<text x="${(b.x1 * s + 2).toFixed(1)}" y="${Math.max(9, b.y1 * s - 2).toFixed(1)}" fill="${c}">${b.label}${b.score !== undefined ? ` ${b.score.toFixed(2)}` : ""}</text>`);
  }
  parts.push("</g></svg>");
  return parts.join("");
}

// The vega packages are ES modules: load them with a real dynamic import from this CommonJS build.
const importEsm = new Function("s", "return import(s)") as (s: string) => Promise<Record<string, unknown>>;

/** Renders a Vega-Lite spec to SVG (no browser, no canvas). */
export async function vegaLiteToSvg(spec: Record<string, unknown>): Promise<string> {
  const vl = (await importEsm("vega-lite")) as { compile(spec: unknown): { spec: unknown } };
  const vega = (await importEsm("vega")) as { View: new (runtime: unknown, options: unknown) => { toSVG(): Promise<string>; finalize(): void }; parse(spec: unknown): unknown };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
