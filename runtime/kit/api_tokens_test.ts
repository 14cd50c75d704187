import { deepEqual, equal, match, notEqual, ok, rejects } from "node:assert/strict";
import {
  CLIENT_TOKEN_PATTERN,
  createToken,
  hashToken,
  readTokens,
  revokeToken,
  TokenStoreError,
  TokenVerifier,
} from "./api_tokens.ts";

async function withDir(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "secai-tokens-" });
  try {
    await fn(`${dir}/inference/tokens.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createToken() stores only the hash, 0600, and returns the token once", () =>
  withDir(async (path) => {
    const { token, id } = await createToken(path, "laptop");
    match(token, CLIENT_TOKEN_PATTERN);
    const text = await Deno.readTextFile(path);
    equal(text.includes(token), false);
    ok(text.includes(hashToken(token)));
    equal(id, hashToken(token).slice(0, 12));
    equal(((await Deno.stat(path)).mode ?? 0) & 0o777, 0o600);
  }));

Deno.test("createToken() refuses a second active token with the same name", () =>
  withDir(async (path) => {
    await createToken(path, "ci");
    await rejects(
      () => createToken(path, "ci"),
      (e: unknown) => e instanceof TokenStoreError && e.code === "TOKEN_NAME_TAKEN",
    );
  }));

Deno.test("createToken() refuses a malformed name", () =>
  withDir(async (path) => {
    await rejects(() => createToken(path, "../x"), TypeError);
  }));

Deno.test("TokenVerifier.verify() accepts an active token and names its owner", () =>
  withDir(async (path) => {
    const { token, id } = await createToken(path, "laptop");
    deepEqual(await new TokenVerifier(path).verify(token), { id, name: "laptop" });
  }));

const rejected = [
  { name: "a malformed token", token: "sk-secai-short" },
  { name: "an unknown token", token: `sk-secai-${"A".repeat(43)}` },
  { name: "an empty token", token: "" },
];
for (const c of rejected) {
  Deno.test(`TokenVerifier.verify() refuses ${c.name}`, () =>
    withDir(async (path) => {
      await createToken(path, "laptop");
      equal(await new TokenVerifier(path).verify(c.token), null);
    }));
}

Deno.test("TokenVerifier.verify() stops accepting a token as soon as it is revoked", () =>
  withDir(async (path) => {
    const { token } = await createToken(path, "laptop");
    const verifier = new TokenVerifier(path);
    notEqual(await verifier.verify(token), null);
    const revoked = await revokeToken(path, "laptop");
    equal(revoked.length, 1);
    equal(await verifier.verify(token), null);
  }));

Deno.test("TokenVerifier.verify() fails closed on a corrupt token file and says why", () =>
  withDir(async (path) => {
    const { token } = await createToken(path, "laptop");
    const verifier = new TokenVerifier(path);
    await Deno.writeTextFile(path, '{"version":1,"tokens":[{"id":"x"}]}');
    equal(await verifier.verify(token), null);
    match(verifier.error ?? "", /invalid/);
  }));

Deno.test("revokeToken() refuses an unknown id or name", () =>
  withDir(async (path) => {
    await rejects(
      () => revokeToken(path, "nobody"),
      (e: unknown) => e instanceof TokenStoreError && e.code === "TOKEN_NOT_FOUND",
    );
  }));

Deno.test("readTokens() reads a missing file as no tokens", () =>
  withDir(async (path) => {
    deepEqual(await readTokens(path), []);
  }));

Deno.test("TokenVerifier.addEphemeral() accepts a token kept only in memory", () =>
  withDir(async (path) => {
    const verifier = new TokenVerifier(path);
    const token = `sk-secai-${"b".repeat(43)}`;
    verifier.addEphemeral(token, { id: "0123456789ab", name: "local-cli" });
    deepEqual(await verifier.verify(token), { id: "0123456789ab", name: "local-cli" });
  }));
