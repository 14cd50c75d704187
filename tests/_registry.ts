/**
 * Helpers of the registry tests: a model promoted through the real quarantine, and the
 * tampering of a promoted blob an attacker with write access to the store could do.
 * @module
 */
import { equal } from "node:assert/strict";
import { quarantineApi } from "../workers/quarantine/api.ts";
import { type PipelineSystem, settle, upload } from "./quarantine/_system.ts";

/**
 * Uploads `bytes` to the quarantine, waits for the job and asserts it was promoted.
 * @returns the registry id of the model
 */
export async function promoteUpload(
  sys: PipelineSystem,
  filename: string,
  bytes: Uint8Array,
): Promise<string> {
  const q = sys.supervisor.client(quarantineApi);
  const job = await settle(q, await upload(q, filename, bytes));
  equal(job.state, "promoted", JSON.stringify(job.error));
  return job.modelId as string;
}

/** Flips one byte of a promoted blob, as an attacker with write access to the store would. */
export async function flipByte(path: string, offset: number): Promise<void> {
  await Deno.chmod(path, 0o644);
  const file = await Deno.open(path, { read: true, write: true });
  try {
    const byte = new Uint8Array(1);
    await file.seek(offset, Deno.SeekMode.Start);
    await file.read(byte);
    byte[0] = (byte[0] as number) ^ 0xff;
    await file.seek(offset, Deno.SeekMode.Start);
    await file.write(byte);
  } finally {
    file.close();
  }
}
