/**
 * The tool registry: every tool the runtime knows, with a strict zod schema for its
 * arguments and the kind of each argument (a workspace path and the operation on it, a URL,
 * or text that must be redacted before it is logged). A tool that is not here is unknown and
 * denied; an argument its schema does not name is refused. The policy (`tools.allow`) decides
 * which of these tools may run and under which constraints; it cannot add tools.
 * @module
 */
import { z } from "zod";
import type { PathOp } from "./resolve.ts";

/** How the gate treats one argument. */
export type ArgKind =
  | { kind: "path"; op: PathOp }
  | { kind: "url" }
  | { kind: "text"; isSensitive: boolean }
  | { kind: "value" };

/** A registered tool. */
export interface ToolSpec {
  name: string;
  description: string;
  /** Strict schema of the arguments (unknown keys refused). */
  args: z.ZodObject<z.ZodRawShape, "strict">;
  /** Kind of each argument the schema names (exactly those: its keys are the arguments). */
  kinds: Readonly<Record<string, ArgKind>>;
}

const PathArg = z.string().min(1).max(4096);
const Text = (max: number) => z.string().max(max);

function tool(
  name: string,
  description: string,
  shape: z.ZodRawShape,
  kinds: Record<string, ArgKind>,
): ToolSpec {
  for (const key of Object.keys(shape)) {
    if (!kinds[key]) throw new TypeError(`Tool "${name}" argument "${key}" has no kind`);
  }
  for (const key of Object.keys(kinds)) {
    if (!shape[key]) throw new TypeError(`Tool "${name}" kind "${key}" names no argument`);
  }
  return { name, description, args: z.strictObject(shape), kinds };
}

/** Every known tool, by name. */
export const TOOL_REGISTRY: ReadonlyMap<string, ToolSpec> = new Map(
  [
    tool("filesystem.read", "Read a file in the workspace", { path: PathArg }, {
      path: { kind: "path", op: "read" },
    }),
    tool("filesystem.list", "List a folder in the workspace", { path: PathArg }, {
      path: { kind: "path", op: "list" },
    }),
    tool(
      "filesystem.write",
      "Write a file in the workspace",
      { path: PathArg, content: Text(1024 * 1024), overwrite: z.boolean().optional() },
      {
        path: { kind: "path", op: "write" },
        content: { kind: "text", isSensitive: true },
        overwrite: { kind: "value" },
      },
    ),
    tool("filesystem.delete", "Delete a file in the workspace", { path: PathArg }, {
      path: { kind: "path", op: "write" },
    }),
    tool(
      "network.fetch",
      "Fetch a URL through the airlock",
      { url: z.string().min(1).max(8192), method: z.enum(["GET", "HEAD", "POST"]).optional() },
      { url: { kind: "url" }, method: { kind: "value" } },
    ),
    tool(
      "shell.exec",
      "Run a shell command",
      { command: Text(8192), cwd: PathArg.optional() },
      { command: { kind: "text", isSensitive: true }, cwd: { kind: "path", op: "list" } },
    ),
    tool(
      "process.spawn",
      "Start a process",
      { command: Text(4096), args: z.array(Text(4096)).max(256).optional() },
      { command: { kind: "text", isSensitive: true }, args: { kind: "text", isSensitive: true } },
    ),
  ].map((t) => [t.name, t]),
);
