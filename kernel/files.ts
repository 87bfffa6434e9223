/**
 * Output files, written whole or not at all: into a temporary name beside the target, renamed over
 * it when complete, removed on any failure. A path that cannot be written is an error naming the
 * option or parameter it came from, the path, and why (no folder, not a folder, no permission, the
 * disk full), and `checkOutputPath` says so before any long work starts. Imports nothing of the kernel.
 */
import * as fs from "fs";
import * as path from "path";

export class OutputPathError extends Error {
  readonly code = "ERR_RK_OUTPUT";
  constructor(message: string) {
    super(message);
    this.name = "OutputPathError";
  }
}

function describePath(file: unknown): string {
  return typeof file === "string" ? JSON.stringify(file) : file === undefined ? "nothing" : `a ${typeof file}`;
}

/** Why writing `file` (a file or a folder) failed, in words, from a Node error. */
export function reason(e: unknown, file: string): string {
  const err = e as NodeJS.ErrnoException;
  const dir = path.dirname(path.resolve(file));
  switch (err?.code) {
    case "ENOENT":
      return fs.existsSync(dir) ? `files cannot be made in ${JSON.stringify(dir)} (ENOENT)` : `its folder ${JSON.stringify(dir)} does not exist`;
    case "ENOTDIR":
      return `a part of ${JSON.stringify(dir)} is not a folder`;
    case "EISDIR":
      return "it is a folder";
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return `${JSON.stringify(dir)} cannot be written (${err.code})`;
    case "ENOSPC":
    case "EDQUOT":
      return `the disk is full (${err.code}); nothing was left at the path`;
    default:
      return err?.message ?? String(e);
  }
}

/**
 * Throws an OutputPathError (naming `what`, e.g. "--save") unless `file` is a non-empty path whose
 * folder exists and can be written, and which is not itself a folder; with `folder`, the output is
 * a folder (written under a temporary name and renamed), so the path may be an existing folder,
 * which it replaces, but not a file.
 */
export function checkOutputPath(file: unknown, what: string, options: { folder?: boolean } = {}): string {
  const kind = options.folder ? "folder" : "file";
  if (typeof file !== "string" || file.length === 0) {
    throw new OutputPathError(`Expected a ${kind} path for ${what} but received ${describePath(file)}`);
  }
  const dir = path.dirname(path.resolve(file));
  let why: string | undefined;
  try {
    if (!fs.statSync(dir).isDirectory()) why = `${JSON.stringify(dir)} is not a folder`;
    else fs.accessSync(dir, fs.constants.W_OK);
    if (!why && fs.existsSync(file) && fs.statSync(file).isDirectory() !== !!options.folder) why = options.folder ? "it is a file" : "it is a folder";
  } catch (e) {
    why = reason(e, file);
  }
  if (why) throw new OutputPathError(`Expected a writable ${kind} path for ${what} but received ${JSON.stringify(file)}: ${why}`);
  return file;
}

/**
 * Writes `file` whole or not at all: `write` fills an open descriptor of a temporary file beside
 * it, which is renamed over `file` when `write` returns. On failure the temporary file is removed,
 * `file` is as it was, and the error names `what`.
 */
export function writeWhole(file: string, what: string, write: (fd: number) => void, mode = 0o644): void {
  checkOutputPath(file, what);
  const tmp = `${file}.${process.pid}.tmp`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "w", mode);
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
    fs.rmSync(tmp, { force: true });
    if (e instanceof OutputPathError || !(e as NodeJS.ErrnoException)?.code) throw e;
    throw new OutputPathError(`Expected a writable file path for ${what} but received ${JSON.stringify(file)}: ${reason(e, file)}`);
  }
}

/**
 * Creates `dir` and its missing parents, one level at a time (not Node's recursive mkdir, which
 * loops forever where a folder answers ENOENT for a child it cannot hold: /proc, a stale mount).
 * A level that cannot be made is an OutputPathError naming `what`, the folder and why.
 */
export function makeFolders(dir: string, what: string): void {
  const missing: string[] = [];
  let at = path.resolve(dir);
  while (!fs.existsSync(at)) {
    missing.unshift(at);
    const up = path.dirname(at);
    if (up === at) break;
    at = up;
  }
  const fail = (why: string) => new OutputPathError(`Expected a folder that can be made for ${what} but received ${JSON.stringify(dir)}: ${why}`);
  if (!fs.statSync(at).isDirectory()) throw fail(`${JSON.stringify(at)} is not a folder`);
  for (const d of missing) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw fail(code === "EEXIST" ? `${JSON.stringify(d)} is not a folder` : code === "ENOENT" ? `${JSON.stringify(d)} cannot be made there (ENOENT)` : reason(e, path.join(d, "x")));
    }
  }
}

/** writeWhole with the whole content at hand. */
export function writeFileWhole(file: string, what: string, data: string | Uint8Array, mode = 0o644): void {
  writeWhole(file, what, (fd) => writeAll(fd, data), mode);
}

/** Writes all of `data` to `fd` (writeSync may write less than asked). */
export function writeAll(fd: number, data: string | Uint8Array): void {
  const buf = typeof data === "string" ? Buffer.from(data) : data;
  for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off, buf.length - off);
}
