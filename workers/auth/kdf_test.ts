import { deepEqual, equal, ok } from "node:assert/strict";
import {
  hashPassphrase,
  isWeaker,
  KdfLimiter,
  PassphraseRecordSchema,
  SCRYPT_PARAMS,
  verifyPassphrase,
} from "./kdf.ts";

/** Cheap parameters: the tests are about the logic, not the cost. */
const CHEAP = { n: 1 << 14, r: 1, p: 1, keyLength: 32 };

Deno.test("verifyPassphrase() accepts the passphrase it was hashed from and nothing else", async () => {
  const record = await hashPassphrase("violet tractor museum 42", CHEAP);
  equal(record.algorithm, "scrypt");
  deepEqual(record.params, CHEAP);
  ok(PassphraseRecordSchema.safeParse(record).success);
  equal(await verifyPassphrase("violet tractor museum 42", record), true);
  for (const wrong of ["violet tractor museum 43", "", "Violet tractor museum 42", "violet"]) {
    equal(await verifyPassphrase(wrong, record), false, wrong);
  }
});

Deno.test("verifyPassphrase() treats NFC and NFD spellings of a passphrase as the same", async () => {
  const record = await hashPassphrase("caf\u00e9 au lait mit zucker", CHEAP);
  equal(await verifyPassphrase("cafe\u0301 au lait mit zucker", record), true);
});

Deno.test("two hashes of one passphrase use different salts", async () => {
  const a = await hashPassphrase("violet tractor museum 42", CHEAP);
  const b = await hashPassphrase("violet tractor museum 42", CHEAP);
  ok(a.salt !== b.salt && a.hash !== b.hash);
});

const badRecords: { name: string; patch: Record<string, unknown> }[] = [
  { name: "N below the legacy 2^14", patch: { params: { ...CHEAP, n: 1 << 13 } } },
  { name: "N not a power of two", patch: { params: { ...CHEAP, n: 20_000 } } },
  { name: "a short key", patch: { params: { ...CHEAP, keyLength: 16 } } },
  { name: "another algorithm", patch: { algorithm: "md5" } },
  { name: "an unknown field", patch: { admin: true } },
  { name: "a hash that is not base64", patch: { hash: "not base64!" } },
];
for (const c of badRecords) {
  Deno.test(`PassphraseRecordSchema refuses ${c.name}`, async () => {
    const record = await hashPassphrase("violet tractor museum 42", CHEAP);
    equal(PassphraseRecordSchema.safeParse({ ...record, ...c.patch }).success, false);
  });
}

Deno.test("isWeaker() flags a record made with less cost than the target", () => {
  equal(isWeaker({ ...SCRYPT_PARAMS, n: 1 << 14 }, SCRYPT_PARAMS), true);
  equal(isWeaker({ ...SCRYPT_PARAMS, keyLength: 32 }, SCRYPT_PARAMS), true);
  equal(isWeaker(SCRYPT_PARAMS, SCRYPT_PARAMS), false);
});

Deno.test("KdfLimiter runs at most its concurrency and refuses callers beyond the queue", async () => {
  const limiter = new KdfLimiter({ concurrency: 2, maxWaiting: 1 });
  const first = limiter.acquire();
  const second = limiter.acquire();
  const third = limiter.acquire();
  ok(first && second && third);
  equal(limiter.acquire(), null, "a fourth caller is refused at once");
  equal(limiter.running, 2);
  let isThirdRunning = false;
  void third.then(() => (isThirdRunning = true));
  await Promise.resolve();
  equal(isThirdRunning, false, "the third waits for a slot");
  (await first)();
  const releaseThird = await third;
  equal(limiter.running, 2, "the freed slot went to the waiting caller");
  (await second)();
  releaseThird();
  releaseThird(); // releasing twice frees one slot only
  equal(limiter.running, 0);
});
