/**
 * Shape and size limits of a tool call (spec 12 §3.2 step 1), checked before anything else:
 * the arguments are plain JSON (strings, finite numbers, booleans, null, arrays, plain
 * objects) within depth, node, member, item and byte limits. A structured-clone message can
 * carry more than JSON (Dates, Maps, NaN, huge strings); none of it reaches the policy.
 * @module
 */

/** The limits. */
export const SHAPE_LIMITS = {
  maxArgs: 128,
  maxDepth: 32,
  maxNodes: 10_000,
  maxMembers: 128,
  maxItems: 4096,
  /** Largest JSON encoding of all arguments (spec 12 §3.1: bodies ≤ 64 KiB). */
  maxBytes: 64 * 1024,
} as const;

/** A refused shape. */
export interface ShapeFailure {
  rule: string;
  reason: string;
}

function fail(rule: string, reason: string): ShapeFailure {
  return { rule: `tools.shape.${rule}`, reason };
}

/**
 * Checks the arguments of a call.
 * @returns null when the shape is acceptable, else the failed rule
 */
export function checkArgsShape(args: Record<string, unknown>): ShapeFailure | null {
  if (Object.keys(args).length > SHAPE_LIMITS.maxArgs) {
    return fail("args", `More than ${SHAPE_LIMITS.maxArgs} arguments`);
  }
  let nodes = 0;
  const stack: { value: unknown; depth: number }[] = [{ value: args, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop() as { value: unknown; depth: number };
    if (++nodes > SHAPE_LIMITS.maxNodes) {
      return fail("nodes", `The arguments have more than ${SHAPE_LIMITS.maxNodes} values`);
    }
    if (depth > SHAPE_LIMITS.maxDepth) {
      return fail("depth", `The arguments nest deeper than ${SHAPE_LIMITS.maxDepth}`);
    }
    if (value === null || typeof value === "string" || typeof value === "boolean") continue;
    if (typeof value === "number") {
      if (!Number.isFinite(value)) return fail("type", "A number is not finite");
      continue;
    }
    if (Array.isArray(value)) {
      if (value.length > SHAPE_LIMITS.maxItems) {
        return fail("items", `An array has more than ${SHAPE_LIMITS.maxItems} items`);
      }
      for (let i = 0; i < value.length; i++) {
        if (!Object.hasOwn(value, i)) return fail("type", "An array has holes");
        stack.push({ value: value[i], depth: depth + 1 });
      }
      continue;
    }
    if (typeof value === "object") {
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        return fail("type", "An argument is not plain JSON");
      }
      const entries = Object.entries(value);
      if (entries.length > SHAPE_LIMITS.maxMembers) {
        return fail("members", `An object has more than ${SHAPE_LIMITS.maxMembers} members`);
      }
      for (const [, v] of entries) stack.push({ value: v, depth: depth + 1 });
      continue;
    }
    return fail("type", `An argument is of type ${typeof value}, not JSON`);
  }
  const bytes = new TextEncoder().encode(JSON.stringify(args)).length;
  if (bytes > SHAPE_LIMITS.maxBytes) {
    return fail("size", `The arguments are larger than ${SHAPE_LIMITS.maxBytes} bytes`);
  }
  return null;
}
