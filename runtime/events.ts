/**
 * Bounded ring of system events with long-poll waiters (feeds `/api/v1/events`).
 * @module
 */
import type { SystemEvent } from "./kit/system_api.ts";

/** Events kept for late subscribers. */
export const EVENT_RING_SIZE = 1000;

/** An event ring buffer. */
export class EventRing {
  #events: SystemEvent[] = [];
  #seq = -1;
  #waiters = new Set<() => void>();

  /** Highest sequence number so far (-1 when none). */
  get last(): number {
    return this.#seq;
  }

  /** Appends an event and wakes long-pollers. */
  push(source: string, type: string, data: Record<string, unknown>): SystemEvent {
    const event: SystemEvent = {
      seq: ++this.#seq,
      ts: new Date().toISOString(),
      source,
      type,
      data,
    };
    this.#events.push(event);
    if (this.#events.length > EVENT_RING_SIZE) this.#events.shift();
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
    return event;
  }

  /**
   * Events after `after`, waiting up to `waitMs` when there are none yet.
   * @returns the events, the last seq and whether older events were dropped
   */
  async since(
    after: number,
    options: { waitMs: number; limit: number; signal?: AbortSignal },
  ): Promise<{ events: SystemEvent[]; last: number; gap: boolean }> {
    if (this.#seq <= after && options.waitMs > 0 && !options.signal?.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          options.signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, options.waitMs);
        this.#waiters.add(done);
        options.signal?.addEventListener("abort", done, { once: true });
      });
    }
    const first = this.#events[0];
    const gap = first !== undefined && after + 1 < first.seq && after >= -1 && this.#seq > after;
    const events = this.#events.filter((e) => e.seq > after).slice(0, options.limit);
    return { events, last: events.at(-1)?.seq ?? this.#seq, gap };
  }

  /** Releases every waiter (shutdown). */
  close(): void {
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }
}
