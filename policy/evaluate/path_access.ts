/**
 * `path_access` (spec 12 §2.2, spec 20 §2 (4)): the lexical path gate, then the filesystem
 * resolution, then the agent's workspace globs (`readable` for read and list, `writable` for
 * write). Both the path as given and the real path it resolves to must match a glob, so a
 * link cannot carry a write out of `outputs/` or a read out of `user_docs/`.
 * @module
 */
import type { z } from "zod";
import { checkPathLexical, firstMatch } from "../path_gate.ts";
import type { PathOp, ResolvedPath } from "../resolve.ts";
import type { PathAccessInputSchema } from "../schema.ts";
import { type EvalContext, type Outcome, Trail } from "./outcome.ts";

/** Outcome of the path gate for one path. */
export type GatedPath =
  | { ok: true; path: string; resolved: ResolvedPath }
  | { ok: false; rule: string; reason: string };

/** Runs the lexical and filesystem halves of the path gate. */
export function gatePath(request: { path: string; op: PathOp }, ctx: EvalContext): GatedPath {
  const { path, op } = request;
  const lexical = checkPathLexical(path);
  if (!lexical.ok) return { ok: false, ...lexical.failure };
  if (!ctx.resolver) {
    return { ok: false, rule: "path.fs.no_workspace", reason: "No workspace is configured" };
  }
  const resolved = ctx.resolver.resolve(lexical.segments, op);
  if (!resolved.ok) return resolved;
  return { ok: true, path: lexical.segments.join("/"), resolved };
}

/** Decides one workspace path access. */
export function evaluatePathAccess(
  input: z.output<typeof PathAccessInputSchema>,
  ctx: EvalContext,
): Outcome {
  const policy = ctx.policy;
  const trail = new Trail({});
  const gated = gatePath(input, ctx);
  if (!gated.ok) return trail.deny(gated.rule, [gated.reason]);
  trail.checks.push("path.lexical", "path.fs");
  trail.facts.path = gated.path;
  trail.facts.real = gated.resolved.real;
  trail.facts.kind = gated.resolved.kind;
  if (gated.resolved.links > 0) trail.facts.links = gated.resolved.links;
  const isWrite = input.op === "write";
  const patterns = isWrite ? policy.workspace.writable : policy.workspace.readable;
  const list = isWrite ? "writable" : "readable";
  const asGiven = firstMatch(gated.path, patterns);
  const real = firstMatch(gated.resolved.real, patterns);
  if (!asGiven || !real) {
    return trail.deny(`agent.workspace.${list}_miss`, [
      `"${
        (asGiven ? gated.resolved.real : gated.path).slice(0, 200)
      }" is not in the workspace's ${list} paths`,
    ]);
  }
  trail.facts.pattern = real.source;
  return trail.allow(`agent.workspace.${list}`, [
    `"${gated.path.slice(0, 200)}" is ${list} (${real.source})`,
  ]);
}
