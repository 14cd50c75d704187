/**
 * `secai tokens create NAME | list | revoke ID|NAME [--home DIR] [--json]`: the per-client
 * bearer tokens of the OpenAI-compatible inference API (`/v1/*`). A token is printed once at
 * creation; only its SHA-256 is stored, in `<state dir>/inference/tokens.json` (0600). A
 * running instance picks changes up at once (a revoked token stops working immediately).
 * @module
 */
import {
  createToken,
  readTokens,
  revokeToken,
  TOKENS_FILE,
  TokenStoreError,
} from "./kit/api_tokens.ts";
import { parseArgs, UsageError } from "./cli_args.ts";
import { resolveHome } from "./home.ts";
import { print, printError } from "./log.ts";

const USAGE = `Usage: secai tokens <create NAME | list | revoke ID|NAME> [--home DIR] [--json]

  create NAME     Create a client token for the /v1 inference API; it is shown only once
  list            Active and revoked tokens (id, name, dates; never the token)
  revoke ID|NAME  Revoke a token at once`;

/** Options of {@linkcode tokensCommand}; tests redirect output. */
export interface TokensCommandOptions {
  write?: (text: string) => void;
  writeError?: (text: string) => void;
  env?: { get(key: string): string | undefined };
}

/**
 * Runs `secai tokens`.
 * @param argv the arguments after `tokens`
 * @returns 0 on success, 1 when the token file refuses the change
 * @throws {UsageError} on a wrong command line (exit 2)
 * @example
 * ```ts
 * Deno.exit(await tokensCommand(["create", "laptop"]));
 * ```
 */
export async function tokensCommand(
  argv: string[],
  options: TokensCommandOptions = {},
): Promise<number> {
  const write = options.write ?? print;
  const writeError = options.writeError ?? printError;
  const { flags, positional } = parseArgs(argv, { home: "string", json: "boolean" });
  const [action, arg, ...rest] = positional;
  if (action === undefined || action === "help") {
    write(USAGE);
    return action === undefined ? 2 : 0;
  }
  if (rest.length > 0) throw new UsageError(`Unexpected argument "${rest[0]}"`);
  const home = resolveHome(flags.home as string | undefined, options.env ?? Deno.env);
  const path = `${home}/${TOKENS_FILE}`;
  try {
    switch (action) {
      case "create": {
        if (arg === undefined) throw new UsageError("secai tokens create needs a NAME");
        let created;
        try {
          created = await createToken(path, arg);
        } catch (error) {
          if (error instanceof TypeError) throw new UsageError(error.message);
          throw error;
        }
        write(
          flags.json ? JSON.stringify({ id: created.id, name: arg, token: created.token }) : [
            `Created token ${created.id} for "${arg}". It is shown only now:`,
            "",
            `  ${created.token}`,
            "",
            `Use it as "Authorization: Bearer <token>" (OpenAI clients: api_key) with the base URL`,
            "http://127.0.0.1:8480/v1 (or your gateway's address).",
          ].join("\n"),
        );
        return 0;
      }
      case "list": {
        if (arg !== undefined) throw new UsageError(`Unexpected argument "${arg}"`);
        const tokens = await readTokens(path);
        const rows = tokens.map(({ sha256: _hash, ...t }) => t);
        if (flags.json) write(JSON.stringify(rows));
        else if (rows.length === 0) write("No client tokens (secai tokens create NAME)");
        else {
          write(
            rows.map((t) =>
              `${t.id}  ${t.name.padEnd(20)} created ${t.createdAt}${
                t.revokedAt === null ? "" : `  REVOKED ${t.revokedAt}`
              }`
            ).join("\n"),
          );
        }
        return 0;
      }
      case "revoke": {
        if (arg === undefined) throw new UsageError("secai tokens revoke needs an ID or NAME");
        const revoked = await revokeToken(path, arg);
        write(
          flags.json
            ? JSON.stringify(revoked.map((t) => ({ id: t.id, name: t.name })))
            : revoked.map((t) => `Revoked token ${t.id} ("${t.name}")`).join("\n"),
        );
        return 0;
      }
      default:
        throw new UsageError(`Unknown tokens command "${action}"`);
    }
  } catch (error) {
    if (!(error instanceof TokenStoreError)) throw error;
    writeError(`secai tokens: ${error.message}`);
    return 1;
  }
}
