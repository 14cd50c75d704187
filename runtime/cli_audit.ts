/**
 * `secai audit …`: the audit log from the command line, offline and read-only — it reads
 * the segment files of a state dir directly, so it works without a running system (and
 * against a copy of one). Exit codes: 0 ok / intact, 1 tampered or failed, 2 usage.
 *
 * - `verify [--home DIR] [--pubkey FILE] [--head FILE] [--json]`
 * - `head [--home DIR] [--json]`, `pubkey [--home DIR]`
 * - `proof SEQ [--size N] [--home DIR] [--json]`, `consistency SIZE [--to N] [--home DIR]
 *   [--json]`: into the latest signed head, or the signed head of size N
 * - `export FROM TO --out FILE [--home DIR]`
 * - `check-bundle FILE --pubkey FILE [--json]`
 * @module
 */
import { parseArgs, UsageError } from "./cli_args.ts";
import { resolveHome } from "./home.ts";
import { print, printError } from "./log.ts";
import { writeFileAtomic } from "./kit/fs.ts";
import { AuditError } from "../workers/audit/offline/errors.ts";
import {
  MAX_BUNDLE_BYTES,
  parseJsonLine,
  type SignedHead,
  SignedHeadSchema,
} from "../workers/audit/offline/format.ts";
import { isHeadSigned, type PublicKeyInfo, readPublicKey } from "../workers/audit/offline/keys.ts";
import {
  proveConsistency,
  proveInclusion,
  readHeadOfSize,
  readLatestHead,
} from "../workers/audit/offline/read.ts";
import { verifyLog } from "../workers/audit/offline/verify.ts";
import { buildBundle, checkBundle } from "../workers/audit/offline/bundle.ts";

/** Options of {@linkcode auditCommand}; tests redirect output and the environment. */
export interface AuditCommandOptions {
  /** Receives stdout text; defaults to `print`. */
  write?: (text: string) => void;
  /** Receives error lines; defaults to `printError`. */
  writeError?: (text: string) => void;
  /** Environment for the state dir default; defaults to `Deno.env`. */
  env?: { get(key: string): string | undefined };
}

const USAGE = `Usage: secai audit <verify|head|pubkey|proof|consistency|export|check-bundle> …`;

/**
 * Runs `secai audit …`.
 * @param argv the arguments after `audit`
 * @param options where output goes
 * @returns 0 ok or intact, 1 tampered or failed
 * @throws {UsageError} on a wrong command line (exit 2)
 * @example
 * ```ts
 * Deno.exit(await auditCommand(["verify", "--json"]));
 * ```
 */
export async function auditCommand(
  argv: string[],
  options: AuditCommandOptions = {},
): Promise<number> {
  const write = options.write ?? print;
  const writeError = options.writeError ?? printError;
  const env = options.env ?? Deno.env;
  const [sub, ...rest] = argv;
  const { flags, positional } = parseArgs(rest, {
    home: "string",
    json: "boolean",
    pubkey: "string",
    head: "string",
    out: "string",
    size: "string",
    to: "string",
  });
  const isJson = flags.json === true;
  const auditDir = () => `${resolveHome(flags.home as string | undefined, env)}/audit`;
  const expectArgs = (n: number, names: string) => {
    if (positional.length !== n) throw new UsageError(`secai audit ${sub} takes ${names}`);
  };
  const emit = (value: unknown, text: string) =>
    write(isJson ? JSON.stringify(value, null, 2) : text);
  try {
    switch (sub) {
      case "verify": {
        expectArgs(0, "no arguments");
        const dir = auditDir();
        const publicKey = typeof flags.pubkey === "string"
          ? await readPublicKey(flags.pubkey)
          : undefined;
        const trustedHeads = typeof flags.head === "string"
          ? [await readHeadFile(flags.head)]
          : undefined;
        const report = await verifyLog(dir, {
          ...(publicKey ? { publicKey } : {}),
          ...(trustedHeads ? { trustedHeads } : {}),
        });
        const text = report.isIntact
          ? `Audit log intact: ${report.detail} (key ${report.keyId.slice(0, 16)})`
          : `Audit log TAMPERED at seq ${report.firstBadSeq ?? "?"}: ${report.kind} — ` +
            report.detail;
        emit(report, text);
        return report.isIntact ? 0 : 1;
      }
      case "head": {
        expectArgs(0, "no arguments");
        const dir = auditDir();
        const publicKey = await readPublicKey(`${dir}/keys/signing.pub`);
        const latest = await readLatestHead(dir);
        if (!latest) {
          writeError("error: the audit log has no signed head yet");
          return 1;
        }
        const isSigned = isHeadSigned(latest.signed, publicKey);
        const h = latest.signed.head;
        emit(
          { ...latest.signed, isSigned, publicKey: publicKey.pem },
          `Tree size ${h.size}, root ${h.root}, signed ${h.ts} by key ${h.key.slice(0, 16)}` +
            (isSigned ? "" : " — SIGNATURE INVALID"),
        );
        return isSigned ? 0 : 1;
      }
      case "pubkey": {
        expectArgs(0, "no arguments");
        const publicKey = await readPublicKey(`${auditDir()}/keys/signing.pub`);
        if (typeof flags.out === "string") {
          await writeFileAtomic(flags.out, publicKey.pem, { mode: 0o644 });
        }
        emit({ keyId: publicKey.id, publicKey: publicKey.pem }, publicKey.pem.trimEnd());
        return 0;
      }
      case "proof": {
        expectArgs(1, "one argument: SEQ");
        const seq = parseCount(positional[0] as string, "SEQ");
        const { dir, head } = await signedAt(auditDir(), flags.size, "--size");
        const proof = await proveInclusion(dir, { seq, head });
        emit(
          proof,
          `Entry ${seq} is in the signed tree of size ${proof.size} (root ${head.head.root}):\n` +
            `${proof.line}\nleaf ${proof.leafHash}\n` + proof.proof.map((p) => `  ${p}`).join("\n"),
        );
        return 0;
      }
      case "consistency": {
        expectArgs(1, "one argument: an earlier tree SIZE");
        const from = parseCount(positional[0] as string, "SIZE");
        const { dir, head } = await signedAt(auditDir(), flags.to, "--to");
        const proof = await proveConsistency(dir, { from, head });
        emit(
          proof,
          `The tree of size ${from} (root ${proof.fromRoot}) is a prefix of the signed tree of ` +
            `size ${proof.to}:\n` + proof.proof.map((p) => `  ${p}`).join("\n"),
        );
        return 0;
      }
      case "export": {
        expectArgs(2, "two arguments: FROM TO");
        if (typeof flags.out !== "string") {
          throw new UsageError("secai audit export needs --out FILE");
        }
        const from = parseCount(positional[0] as string, "FROM");
        const to = parseCount(positional[1] as string, "TO");
        const { dir, head, publicKey } = await signedLatest(auditDir());
        const bundle = await buildBundle(dir, { from, to, head, publicKeyPem: publicKey.pem });
        await writeFileAtomic(flags.out, JSON.stringify(bundle) + "\n", { mode: 0o644 });
        emit(
          { out: flags.out, from, to, size: head.head.size, entries: bundle.entries.length },
          `Exported entries ${from}..${to} with proofs into the tree of size ${head.head.size} ` +
            `to ${flags.out}`,
        );
        return 0;
      }
      case "check-bundle": {
        expectArgs(1, "one argument: FILE");
        if (typeof flags.pubkey !== "string") {
          throw new UsageError("secai audit check-bundle needs --pubkey FILE (the key you trust)");
        }
        const publicKey = await readPublicKey(flags.pubkey);
        const data = await readJsonFile(positional[0] as string, MAX_BUNDLE_BYTES);
        const report = checkBundle(data, publicKey);
        emit(
          report,
          report.isValid ? `Bundle valid: ${report.detail}` : `Bundle INVALID: ${report.detail}`,
        );
        return report.isValid ? 0 : 1;
      }
      case undefined:
      case "help":
        write(USAGE);
        return sub === undefined ? 2 : 0;
      default:
        throw new UsageError(`Unknown audit command "${sub}"`);
    }
  } catch (err) {
    if (!(err instanceof AuditError)) throw err;
    writeError(`error: ${err.message}`);
    return 1;
  }
}

function parseCount(value: string, name: string): number {
  if (!/^\d{1,15}$/.test(value)) {
    throw new UsageError(`${name} must be a non-negative integer, got "${value}"`);
  }
  return Number(value);
}

/** The latest head, which must carry a valid signature by the directory's key. */
async function signedLatest(
  dir: string,
): Promise<{ dir: string; head: SignedHead; publicKey: PublicKeyInfo }> {
  const publicKey = await readPublicKey(`${dir}/keys/signing.pub`);
  const latest = await readLatestHead(dir);
  if (!latest) throw new AuditError("AUDIT_NOT_FOUND", "The audit log has no signed head yet");
  if (!isHeadSigned(latest.signed, publicKey)) {
    throw new AuditError(
      "AUDIT_MALFORMED",
      `The latest head (size ${latest.signed.head.size}) is not signed by the log's key (run ` +
        `"secai audit verify")`,
    );
  }
  return { dir, head: latest.signed, publicKey };
}

/** The latest signed head, or the signed head of the size a flag names. */
async function signedAt(
  dir: string,
  flag: unknown,
  name: string,
): Promise<{ dir: string; head: SignedHead }> {
  if (typeof flag !== "string") return await signedLatest(dir);
  const size = parseCount(flag, name);
  const publicKey = await readPublicKey(`${dir}/keys/signing.pub`);
  return { dir, head: await readHeadOfSize(dir, { size, publicKey }) };
}

async function readJsonFile(path: string, maxBytes: number): Promise<unknown> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new AuditError("AUDIT_NOT_FOUND", `File "${path}" does not exist`, { cause: err });
    }
    throw err;
  }
  if (info.size > maxBytes) {
    throw new AuditError("AUDIT_BUNDLE_INVALID", `File "${path}" is larger than ${maxBytes} bytes`);
  }
  const value = parseJsonLine(await Deno.readTextFile(path));
  if (value === undefined) {
    throw new AuditError("AUDIT_BUNDLE_INVALID", `File "${path}" is not JSON`);
  }
  return value;
}

/** A head saved earlier (`secai audit head --json > FILE`, or a bare signed head). */
async function readHeadFile(path: string): Promise<SignedHead> {
  const value = await readJsonFile(path, 64 * 1024) as Record<string, unknown>;
  const candidate = typeof value === "object" && value !== null
    ? { head: value.head, sig: value.sig }
    : value;
  const parsed = SignedHeadSchema.safeParse(candidate);
  if (!parsed.success) {
    throw new AuditError("AUDIT_MALFORMED", `File "${path}" does not hold a signed head`);
  }
  return parsed.data;
}
