/**
 * The history of this session's cells, for history_request: tail, range and search (glob patterns
 * as IPython's history manager takes them), with outputs on request.
 *
 * Bounded, so that a long session's memory does not grow with it: the inputs of the last
 * HISTORY_INPUTS cells, and the text/plain outputs of the last HISTORY_OUTPUTS cells (IPython's
 * `cache_size` default for Out), each cut to HISTORY_OUTPUT_CHARS characters.
 */
export const HISTORY_INPUTS = 10000;
export const HISTORY_OUTPUTS = 1000;
export const HISTORY_OUTPUT_CHARS = 65536;

export interface HistoryEntry {
  session: number;
  line: number;
  input: string;
  output?: string;
}

export interface HistoryQuery {
  output?: boolean;
  raw?: boolean;
  hist_access_type?: string;
  session?: number;
  start?: number;
  stop?: number;
  n?: number;
  pattern?: string;
  unique?: boolean;
}

export type HistoryRow = [number, number, string] | [number, number, [string, string | null]];

/** Session number 1 is this session (IPython numbers sessions from 1; 0 and negatives are relative). */
export const THIS_SESSION = 1;

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`, "s");
}

export class History {
  private readonly entries: HistoryEntry[] = [];

  add(line: number, input: string): void {
    this.entries.push({ session: THIS_SESSION, line, input });
    if (this.entries.length > HISTORY_INPUTS) this.entries.splice(0, this.entries.length - HISTORY_INPUTS);
    const stale = this.entries.length - 1 - HISTORY_OUTPUTS;
    if (stale >= 0) delete this.entries[stale].output;
  }

  setOutput(line: number, output: string): void {
    // The newest entries are the likely ones: search from the end.
    for (let i = this.entries.length - 1; i >= 0 && i >= this.entries.length - HISTORY_OUTPUTS; i--) {
      if (this.entries[i].line === line) {
        this.entries[i].output = output.length > HISTORY_OUTPUT_CHARS ? `${output.slice(0, HISTORY_OUTPUT_CHARS)}…` : output;
        return;
      }
    }
  }

  get all(): readonly HistoryEntry[] {
    return this.entries;
  }

  query(q: HistoryQuery): HistoryRow[] {
    let rows: HistoryEntry[];
    switch (q.hist_access_type) {
      case "tail": {
        const n = q.n ?? 10;
        rows = n > 0 ? this.entries.slice(-n) : [];
        break;
      }
      case "range": {
        const session = q.session ?? 0;
        // 0 or THIS_SESSION mean this session; earlier sessions are not kept by this kernel.
        if (session !== 0 && session !== THIS_SESSION && session !== -0) {
          rows = [];
          break;
        }
        const start = q.start ?? 1;
        const stop = q.stop ?? Number.MAX_SAFE_INTEGER;
        rows = this.entries.filter((e) => e.line >= start && e.line < stop);
        break;
      }
      case "search": {
        const re = globToRegExp(q.pattern ?? "*");
        let found = this.entries.filter((e) => re.test(e.input));
        if (q.unique) {
          const seen = new Set<string>();
          found = found.filter((e) => (seen.has(e.input) ? false : (seen.add(e.input), true)));
        }
        rows = q.n !== undefined && q.n !== null ? found.slice(-q.n) : found;
        break;
      }
      default:
        rows = [];
    }
    return rows.map((e) => (q.output ? [e.session, e.line, [e.input, e.output ?? null]] : [e.session, e.line, e.input]));
  }
}
