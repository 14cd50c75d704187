/**
 * The gateway serves no RPC contract (its interface is HTTP); this holds its config schema,
 * shared with the runtime's config loader.
 * @module
 */
import { z } from "zod";

/** Config section `gateway`. */
export const GatewayConfigSchema = z.strictObject({
  /** Listen address; loopback by default (one way in, spec 10 §1). */
  host: z.string().regex(/^[0-9a-zA-Z.:-]{1,253}$/).default("127.0.0.1"),
  /** TCP port; 0 picks a free one (tests). */
  port: z.number().int().min(0).max(65535).default(8480),
  /** Optional unix socket path (absolute, or relative to the state dir) instead of TCP. */
  unixSocket: z.string().min(1).max(200).nullable().default(null),
  /** Largest JSON request body accepted. */
  maxJsonBytes: z.number().int().min(1024).max(16 << 20).default(1 << 20),
}).default({});
/** Gateway config. */
export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;
