/**
 * The kernel's own diagnostics (dropped messages, unknown types, failed handlers) go to the real
 * stderr, never into a cell's output: the writers are taken here, before OutputCapture replaces
 * process.stdout.write and process.stderr.write.
 */
const realStderr = process.stderr.write.bind(process.stderr);

export function kernelLog(text: string): void {
  realStderr(text.endsWith("\n") ? text : `${text}\n`);
}

/** Writes raw bytes (a worker thread's stderr) to the real stderr. */
export function kernelStderr(chunk: Buffer | string): void {
  realStderr(chunk);
}
