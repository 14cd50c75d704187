/**
 * Admission and turns: at most `running` generations at once, at most `waiting` more in a
 * FIFO queue; a request beyond both is refused at once (429), and a request that waits too
 * long gives up (503). Also a plain mutex for the one local engine.
 * @module
 */

/** Why a request did not get a turn. */
export type TurnRefusal = "QUEUE_FULL" | "QUEUE_TIMEOUT" | "CANCELLED";

/** A bounded FIFO of turns. */
export class TurnQueue {
  readonly #running: number;
  readonly #waiting: number;
  #busy = 0;
  readonly #queue: Array<(isGranted: boolean) => void> = [];

  /**
   * @param running turns held at once (≥ 1)
   * @param waiting requests that may wait (≥ 0)
   */
  constructor(running: number, waiting: number) {
    if (!Number.isInteger(running) || running < 1) {
      throw new RangeError(`Invalid running ${running}`);
    }
    if (!Number.isInteger(waiting) || waiting < 0) {
      throw new RangeError(`Invalid waiting ${waiting}`);
    }
    this.#running = running;
    this.#waiting = waiting;
  }

  /** Turns held now. */
  get running(): number {
    return this.#busy;
  }

  /** Requests waiting now. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Whether a new request would be admitted now (a turn is free or the queue has room).
   * {@link acquire} decides again; this is for refusing before any work.
   */
  get canAdmit(): boolean {
    return this.#busy < this.#running || this.#queue.length < this.#waiting;
  }

  /**
   * Waits for a turn.
   * @returns null once the turn is held (call {@link release}), else why not
   */
  acquire(options: { timeoutMs: number; signal: AbortSignal }): Promise<TurnRefusal | null> {
    if (options.signal.aborted) return Promise.resolve("CANCELLED");
    if (this.#busy < this.#running) {
      this.#busy++;
      return Promise.resolve(null);
    }
    if (this.#queue.length >= this.#waiting) return Promise.resolve("QUEUE_FULL");
    return new Promise((resolve) => {
      let settled = false;
      const finish = (answer: TurnRefusal | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal.removeEventListener("abort", onAbort);
        const at = this.#queue.indexOf(grant);
        if (at !== -1) this.#queue.splice(at, 1);
        resolve(answer);
      };
      const grant = (isGranted: boolean) => finish(isGranted ? null : "CANCELLED");
      const onAbort = () => finish("CANCELLED");
      const timer = setTimeout(() => finish("QUEUE_TIMEOUT"), options.timeoutMs);
      options.signal.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(grant);
    });
  }

  /** Gives a turn back: the next in line gets it. */
  release(): void {
    const next = this.#queue.shift();
    if (next !== undefined) next(true);
    else this.#busy = Math.max(0, this.#busy - 1);
  }
}

/** A promise-chain mutex. */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  /** Runs `fn` after every earlier holder finished. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(() => undefined, () => undefined);
    return result;
  }
}
