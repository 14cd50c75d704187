/**
 * A seeded pseudo-random generator for tests and fixtures (mulberry32): the same seed gives
 * the same model weights, the same fuzz cases, so a failure can be replayed.
 * @module
 */

/**
 * @param seed any 32-bit integer
 * @returns a function giving the next number in [0, 1)
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return function next(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
