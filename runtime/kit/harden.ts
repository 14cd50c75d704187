/**
 * Imported first by every control worker. Removes ambient channels that would let a worker
 * reach another without a port from the supervisor: BroadcastChannel is shared by every
 * worker of the process, a global registry in all but name.
 * @module
 */
const ambient = ["BroadcastChannel"] as const;
for (const name of ambient) {
  Reflect.deleteProperty(globalThis, name);
}
