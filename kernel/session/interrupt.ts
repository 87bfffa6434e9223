/**
 * Interrupting the running cell. The I/O thread turns interrupt_request into SIGINT (and, for
 * code SIGINT cannot reach, a V8 termination; see protocol/io-thread.ts). Here SIGINT rejects the
 * running cell's interrupt promise, which every await of a cell races against, so a pending await
 * that never resolves ends too. Synchronous top-level code is stopped by vm's breakOnSigint.
 */

/** The error a cell ends with when interrupted, named as IPython names it. */
export class KeyboardInterrupt extends Error {
  constructor(message = "Interrupted by the user") {
    super(message);
    this.name = "KeyboardInterrupt";
  }
}

export class Interrupts {
  private reject: ((e: Error) => void) | undefined;
  private promise: Promise<never> | undefined;

  /** Installs the SIGINT handler (kernel mode only: in plain Node, SIGINT should still end the process). */
  installSignalHandler(): void {
    process.on("SIGINT", () => this.signal());
  }

  /** A promise that rejects with KeyboardInterrupt when the current cell is interrupted. */
  arm(): Promise<never> {
    if (!this.promise) {
      this.promise = new Promise<never>((_, reject) => {
        this.reject = reject;
      });
      this.promise.catch(() => undefined);
    }
    return this.promise;
  }

  disarm(): void {
    this.promise = undefined;
    this.reject = undefined;
  }

  get armed(): boolean {
    return this.promise !== undefined;
  }

  /** Interrupts the running cell, if any. */
  signal(): void {
    const reject = this.reject;
    this.disarm();
    reject?.(new KeyboardInterrupt());
  }

  /** Races a promise against an interrupt of the current cell. */
  race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.arm()]);
  }
}

/** True for the error vm throws when breakOnSigint stops a script, or a KeyboardInterrupt. */
export function isInterrupt(e: unknown): boolean {
  return e instanceof KeyboardInterrupt || (typeof e === "object" && e !== null && (e as { code?: string }).code === "ERR_SCRIPT_EXECUTION_INTERRUPTED");
}
