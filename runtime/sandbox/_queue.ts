/**
 * A FIFO counting semaphore: at most `size` jobs run at once, the rest wait in order.
 * Private to runtime/sandbox.
 * @module
 */

/** Limits how many holders run at once. */
export class Semaphore {
  #free: number;
  readonly #waiting: Array<() => void> = [];

  /** @param size how many may hold it at once (≥ 1) */
  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`Invalid size ${size}`);
    this.#free = size;
  }

  /**
   * Waits for a slot.
   * @returns true once held (call {@link release} later), false when `signal` aborted first
   */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const grant = (): void => {
        signal?.removeEventListener("abort", abort);
        resolve(true);
      };
      const abort = (): void => {
        const index = this.#waiting.indexOf(grant);
        if (index >= 0) this.#waiting.splice(index, 1);
        resolve(false);
      };
      this.#waiting.push(grant);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }

  /** Frees a slot, handing it straight to the longest waiter. */
  release(): void {
    const next = this.#waiting.shift();
    if (next === undefined) this.#free++;
    else next();
  }
}
