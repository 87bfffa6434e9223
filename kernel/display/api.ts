/**
 * The display API of cells: `display(value)`, `display.html(...)` and friends, updatable displays,
 * `clearOutput()`, and a progress bar that updates one display in place. The kernel installs a
 * publisher that turns these into display_data / update_display_data / clear_output messages;
 * outside a kernel the text/plain form goes to stdout.
 */
import { randomUUID } from "crypto";

import { MimeBundle, SILENT, bundleOf, escapeHtml } from "./mimebundle";

export interface Publisher {
  display(bundle: MimeBundle, metadata: Record<string, unknown>, displayId?: string): void;
  update(bundle: MimeBundle, metadata: Record<string, unknown>, displayId: string): void;
  clear(wait: boolean): void;
}

const consolePublisher: Publisher = {
  display: (b) => console.log(String(b["text/plain"] ?? "")),
  update: (b) => console.log(String(b["text/plain"] ?? "")),
  clear: () => undefined,
};

let publisher: Publisher = consolePublisher;

export function setPublisher(p: Publisher | undefined): void {
  publisher = p ?? consolePublisher;
}

export interface DisplayOptions {
  /** Give the display an id so that it can be updated later (update_display_data). */
  displayId?: string;
  metadata?: Record<string, unknown>;
}

export interface DisplayHandle {
  readonly id: string;
  /** Replaces what this display shows. */
  update(value: unknown): void;
}

const MIME_KEY = /^[a-z]+\/[\w.+-]+$/;

/** A plain object whose keys are all MIME types is taken as a bundle as is. */
export function isMimeBundle(v: unknown): v is MimeBundle {
  if (v === null || typeof v !== "object" || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype) return false;
  const keys = Object.keys(v);
  return keys.length > 0 && keys.every((k) => MIME_KEY.test(k));
}

export function toBundle(value: unknown): MimeBundle {
  return isMimeBundle(value) ? (value["text/plain"] === undefined ? { ...value, "text/plain": "[rich output]" } : value) : bundleOf(value);
}

function show(bundle: MimeBundle, options: DisplayOptions = {}): DisplayHandle {
  const id = options.displayId ?? randomUUID();
  publisher.display(bundle, options.metadata ?? {}, id);
  return {
    id,
    update: (value: unknown) => publisher.update(toBundle(value), options.metadata ?? {}, id),
    [SILENT]: true,
  } as DisplayHandle;
}

function base64(data: Uint8Array | string): string {
  return typeof data === "string" ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
}

export interface DisplayFunction {
  /** Shows any value: a MIME bundle as is, an object with a mime bundle method, else its text. */
  (value: unknown, options?: DisplayOptions): DisplayHandle;
  html(html: string, options?: DisplayOptions): DisplayHandle;
  svg(svg: string, options?: DisplayOptions): DisplayHandle;
  png(data: Uint8Array | string, options?: DisplayOptions): DisplayHandle;
  jpeg(data: Uint8Array | string, options?: DisplayOptions): DisplayHandle;
  json(value: unknown, options?: DisplayOptions): DisplayHandle;
  markdown(markdown: string, options?: DisplayOptions): DisplayHandle;
  latex(latex: string, options?: DisplayOptions): DisplayHandle;
  text(text: string, options?: DisplayOptions): DisplayHandle;
  /** A Vega-Lite v5 spec (the frontend renders it; text/plain is a fallback). */
  vegalite(spec: Record<string, unknown>, options?: DisplayOptions & { svg?: string; text?: string }): DisplayHandle;
  /** Replaces the content of the display with this id (update_display_data). */
  update(id: string, value: unknown, metadata?: Record<string, unknown>): void;
  /** A progress bar updated in place. */
  progress(total: number, options?: { label?: string }): ProgressBar;
}

function check(what: string, v: unknown, type: "string"): void {
  if (typeof v !== type) throw Object.assign(new TypeError(`Expected a ${type} for display.${what} but received ${typeof v}`), { code: "ERR_RK_DISPLAY" });
}

export const display: DisplayFunction = Object.assign((value: unknown, options?: DisplayOptions) => show(toBundle(value), options), {
  html: (html: string, o?: DisplayOptions) => (check("html", html, "string"), show({ "text/html": html, "text/plain": "[HTML]" }, o)),
  svg: (svg: string, o?: DisplayOptions) => (check("svg", svg, "string"), show({ "image/svg+xml": svg, "text/plain": "[SVG]" }, o)),
  png: (data: Uint8Array | string, o?: DisplayOptions) => show({ "image/png": base64(data), "text/plain": "[PNG image]" }, o),
  jpeg: (data: Uint8Array | string, o?: DisplayOptions) => show({ "image/jpeg": base64(data), "text/plain": "[JPEG image]" }, o),
  json: (value: unknown, o?: DisplayOptions) => show({ "application/json": value, "text/plain": JSON.stringify(value, null, 2) ?? "undefined" }, o),
  markdown: (md: string, o?: DisplayOptions) => (check("markdown", md, "string"), show({ "text/markdown": md, "text/plain": md }, o)),
  latex: (latex: string, o?: DisplayOptions) => (check("latex", latex, "string"), show({ "text/latex": latex, "text/plain": latex }, o)),
  text: (text: string, o?: DisplayOptions) => show({ "text/plain": String(text) }, o),
  vegalite: (spec: Record<string, unknown>, o?: DisplayOptions & { svg?: string; text?: string }) => {
    const bundle: MimeBundle = { "application/vnd.vegalite.v5+json": spec, "text/plain": o?.text ?? "[Vega-Lite chart]" };
    if (o?.svg) bundle["image/svg+xml"] = o.svg;
    return show(bundle, o);
  },
  update: (id: string, value: unknown, metadata: Record<string, unknown> = {}) => {
    check("update id", id, "string");
    publisher.update(toBundle(value), metadata, id);
  },
  progress: (total: number, options: { label?: string } = {}) => new ProgressBar(total, options.label ?? ""),
});

/** Clears the output of the current cell; with wait, only when new output arrives. */
export function clearOutput(wait = false): void {
  publisher.clear(wait);
}

/**
 * A progress bar that updates a single display in place: an HTML <progress> for notebooks and a
 * text bar for consoles. Updates are throttled to ten a second; finish() always shows.
 */
export class ProgressBar {
  readonly [SILENT] = true;
  private readonly handle: DisplayHandle;
  private readonly start = performance.now();
  private lastShown = 0;
  private done = 0;
  private note = "";
  private finished = false;

  constructor(
    readonly total: number,
    readonly label: string,
  ) {
    if (!(Number.isFinite(total) && total >= 0)) {
      throw Object.assign(new RangeError(`Expected a finite number >= 0 for the progress total but received ${total}`), { code: "ERR_RK_DISPLAY" });
    }
    this.handle = show(this.bundle());
  }

  get value(): number {
    return this.done;
  }

  /** Sets how much is done (0..total) and an optional note. */
  update(done: number, note = ""): void {
    this.done = Math.max(0, Math.min(this.total, done));
    this.note = note;
    const now = performance.now();
    if (now - this.lastShown >= 100 || this.done >= this.total) {
      this.lastShown = now;
      this.handle.update(this.bundle());
    }
  }

  /** Marks the bar complete (or stopped, with a note saying why). */
  finish(note = ""): void {
    if (this.finished) return;
    this.finished = true;
    this.note = note;
    this.handle.update(this.bundle());
  }

  private bundle(): MimeBundle {
    const frac = this.total === 0 ? 1 : this.done / this.total;
    const secs = ((performance.now() - this.start) / 1000).toFixed(1);
    const width = 30;
    const filled = Math.round(frac * width);
    const text = `${this.label ? `${this.label} ` : ""}[${"#".repeat(filled)}${".".repeat(width - filled)}] ${this.done}/${this.total} (${secs} s)${this.note ? ` ${this.note}` : ""}`;
    const html =
      `<div class="rk-progress" style="font-family:monospace">${escapeHtml(this.label)} ` +
      `<progress value="${this.done}" max="${this.total}" style="width:240px;vertical-align:middle"></progress> ` +
      `${this.done}/${this.total} (${secs} s)${this.note ? ` ${escapeHtml(this.note)}` : ""}</div>`;
    return { "text/html": html, "text/plain": text };
  }
}
