/**
 * What cells see besides their own names: the globals the kernel installs, and their declarations
 * for the type checker (prepended to every cell's previous declarations in the compiler thread).
 */
import * as path from "path";

/** Absolute module path of a kernel file, for `import("...")` types in the prelude. */
export function modulePath(rel: string): string {
  return path.resolve(__dirname, "..", rel).split(path.sep).join("/");
}

export function preludeDeclarations(): string {
  return `declare global {
  /** Shows a value (a MIME bundle as is, an object with a mime bundle method, else its text); .html(), .svg(), .png(), .json(), .markdown(), .vegalite(), .update(), .progress(). */
  const display: import("${modulePath("display/api")}").DisplayFunction;
  /** Clears the output of this cell; with wait, only when new output arrives. */
  function clearOutput(wait?: boolean): void;
  /** Asks the user for a line of text through the frontend (stdin channel). */
  function input(prompt?: string, options?: { password?: boolean }): Promise<string>;
  /** Runs magics from code: await magics.run("%time 1 + 1"); magics.list(); magics.help("time"). */
  const magics: import("${modulePath("magics/api")}").MagicsApi;
  /** Comms with the frontend: comms.registerTarget(name, (comm, data) => ...), comms.open(target, data). */
  const comms: import("${modulePath("session/comms")}").CommsApi;
  /** The post-processing API: rk.createPostprocessor, rk.presets, rk.loadDataset, rk.synthesize, ... */
  const rk: typeof import("${modulePath("postprocess/api")}");
  /** The Postprocessor saved by %optimize --save FILE (same config, backend and precision; cpu when its backend is missing here). */
  function loadOptimized(file: string): import("${modulePath("postprocess/api")}").Postprocessor;
}
`;
}
