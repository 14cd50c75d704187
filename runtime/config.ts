/**
 * The one config file, `<home>/config.yaml`: created with documented defaults on first
 * start, strictly validated (unknown keys, duplicate keys and wrong types are refused with
 * the field path), never silently repaired.
 * @module
 */
import { z } from "zod";
import { parseDocument } from "yaml";
import { GatewayConfigSchema } from "../workers/gateway/api.ts";
import { PolicyConfigSchema } from "../workers/policy/api.ts";
import { AuditConfigSchema } from "../workers/audit/api.ts";
import { AuthConfigSchema } from "../workers/auth/api.ts";
import { QuarantineConfigSchema } from "../workers/quarantine/api.ts";
import { RegistryConfigSchema } from "../workers/registry/api.ts";
import { InferenceConfigSchema } from "../workers/inference/api.ts";
import { describeZodError } from "./kit/validate.ts";
import { writeFileAtomic } from "./kit/fs.ts";

/** Largest config file read. */
export const MAX_CONFIG_BYTES = 256 * 1024;

/** Supervisor section. */
export const SupervisorConfigSchema = z.strictObject({
  /** Heartbeat period; a worker missing 3 in a row is restarted. */
  heartbeatMs: z.number().int().min(100).max(60_000).default(1_000),
  /** Graceful shutdown budget for all controls together. */
  shutdownTimeoutMs: z.number().int().min(500).max(60_000).default(4_000),
}).default({});

/** The whole config. */
export const ConfigSchema = z.strictObject({
  gateway: GatewayConfigSchema,
  supervisor: SupervisorConfigSchema,
  policy: PolicyConfigSchema,
  audit: AuditConfigSchema,
  auth: AuthConfigSchema,
  quarantine: QuarantineConfigSchema,
  registry: RegistryConfigSchema,
  inference: InferenceConfigSchema,
});
/** Validated config. */
export type Config = z.infer<typeof ConfigSchema>;

/** Raised when the config cannot be used; the message names the file and field. */
export class ConfigError extends Error {
  /** Machine-readable code. */
  readonly code: "CONFIG_INVALID" | "CONFIG_UNREADABLE";
  /** @param code kind of failure @param message names file and field */
  constructor(
    code: "CONFIG_INVALID" | "CONFIG_UNREADABLE",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ConfigError";
    this.code = code;
  }
}

/** The file written on first start: every default, each explained. */
export const DEFAULT_CONFIG_YAML =
  `# SecAI Runtime configuration. Created on first start; edit and restart.
# Unknown keys, duplicate keys and wrong types are refused at start with the field named.

gateway:
  # Listen address. Loopback only by default: the gateway is the one way in.
  host: 127.0.0.1
  # TCP port (SECAI_PORT or --port override it for one run; 0 picks a free port).
  port: 8480
  # Unix socket path instead of TCP (absolute, or relative to the state dir), or null.
  unixSocket: null
  # Largest JSON request body, in bytes.
  maxJsonBytes: 1048576

supervisor:
  # Heartbeat period in ms; a control that misses 3 in a row is restarted.
  heartbeatMs: 1000
  # Budget in ms for the ordered graceful shutdown of all controls.
  shutdownTimeoutMs: 4000

# Per-control sections (more settings arrive with each control).
policy:
  # The policy files are <project>/policy/defaults/*.yaml, replaced file by file by copies in
  # <state dir>/policy/ (watched: an edit applies after this many ms of quiet, if it is valid).
  reloadDebounceMs: 100

audit:
  # A segment of the audit log is rotated (and made read-only) at this many bytes.
  segmentMaxBytes: 33554432
  # Full verification of the log every N minutes (0: off), and once shortly after start.
  verifyIntervalMinutes: 30
  verifyOnStart: true
  # Retention: once the segments take more than this many bytes, the oldest are deleted and
  # a signed anchor (audit/anchor.json) stands for them; the rest still verifies and proves,
  # and tree.bin keeps every hash. 0 keeps everything. Default 4 GiB.
  retainMaxBytes: 4294967296

auth:
  # Minutes without a change (any POST from the dashboard) before a session ends; reading
  # pages does not extend it.
  idleTimeoutMinutes: 30
  # Hours after login when a session ends regardless of activity.
  sessionLifetimeHours: 12
  # A file in the state dir's auth/ folder holding the first passphrase, for unattended
  # installs: read once at the first start, hashed (scrypt), then deleted. null: set the
  # passphrase in the browser with the setup code from auth/setup-code.
  initialPassphraseFile: null

# Model quarantine (every key optional; see workers/quarantine/api.ts for all of them):
# maxArtifactBytes, allowedFormats [gguf, safetensors], requireSignature (false),
# trustedKeys [{id, publicKey}] (Ed25519, base64) or [{id, publicKeyPem}] (EC key of OpenSSF
# model signing bundles), sources [{urlPrefix, formats,
# requireSignature}], pins [{name, format, filename, sha256, sizeBytes, blocked, ...}],
# inboxPollMs (5000), stageTimeoutMs, scanHeapMb, scanMemMb.
quarantine: {}

# Trusted registry: verifyIntervalMinutes (5, 15, 30 or 60; default 15) re-hashes every model.
registry: {}

# Local inference (OpenAI-compatible API at /v1; every key optional, see
# workers/inference/api.ts): enabled (true), defaultModel (null), contextSize (8192),
# threads (null: cores - 1), memoryBudgetMb (null: available memory - 1 GiB),
# idleUnloadMinutes (15), defaultMaxTokens (512), maxTokensLimit (4096), maxConcurrent (1),
# maxQueue (8), queueTimeoutMs, requestTimeoutMs (300000), external (null, or
# {baseUrl: https://host/v1, models: [names], apiKeyFile: inference/<file>}: used only when
# the policy's egress domain allows it).
inference: {}
`;

/**
 * Validates config text.
 * @param text YAML source
 * @param source file name for messages
 * @throws {ConfigError} CONFIG_INVALID naming the field and reason
 */
export function parseConfig(text: string, source: string): Config {
  if (text.length > MAX_CONFIG_BYTES) {
    throw new ConfigError(
      "CONFIG_INVALID",
      `Config "${source}" is larger than ${MAX_CONFIG_BYTES} bytes`,
    );
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const yamlError = doc.errors[0];
  if (yamlError) {
    throw new ConfigError(
      "CONFIG_INVALID",
      `Config "${source}" is not valid YAML: ${yamlError.message.split("\n")[0]}`,
    );
  }
  let value: unknown;
  try {
    // Aliases are refused outright: they add nothing a config needs and enable "billion
    // laughs" expansion.
    value = doc.toJS({ maxAliasCount: 0 }) ?? {};
  } catch (err) {
    throw new ConfigError(
      "CONFIG_INVALID",
      `Config "${source}" uses YAML aliases, which are not allowed`,
      { cause: err },
    );
  }
  const parsed = ConfigSchema.safeParse(value);
  if (!parsed.success) {
    throw new ConfigError(
      "CONFIG_INVALID",
      `Config "${source}" is invalid ${describeZodError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/**
 * Loads `<home>/config.yaml`, creating it with the defaults when absent.
 * @throws {ConfigError}
 */
export async function loadConfig(
  home: string,
): Promise<{ config: Config; path: string; created: boolean }> {
  const path = `${home}/config.yaml`;
  let text: string;
  let created = false;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new ConfigError("CONFIG_UNREADABLE", `Cannot read config "${path}"`, { cause: err });
    }
    await writeFileAtomic(path, DEFAULT_CONFIG_YAML);
    text = DEFAULT_CONFIG_YAML;
    created = true;
  }
  return { config: parseConfig(text, path), path, created };
}
