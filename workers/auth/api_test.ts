import { equal, match } from "node:assert/strict";
import { AuthConfigSchema, passphraseProblem } from "./api.ts";

const refused: { name: string; passphrase: string; reason: RegExp }[] = [
  { name: "a passphrase of 14 characters", passphrase: "abcdefghijklmn", reason: /at least 15/ },
  { name: "an empty passphrase", passphrase: "", reason: /at least 15/ },
  {
    name: "a passphrase of 257 characters",
    passphrase: "ab1-".repeat(64) + "x",
    reason: /at most 256/,
  },
  {
    name: "a blocklisted passphrase",
    passphrase: "correct horse battery staple",
    reason: /common/,
  },
  {
    name: "a blocklisted one with case and separators",
    passphrase: "Password-Password!",
    reason: /common/,
  },
  { name: "one piece repeated", passphrase: "abc1!abc1!abc1!abc1!", reason: /repeated/ },
  { name: "too few distinct characters", passphrase: "aaaabbbbccccdddd", reason: /5 different/ },
  // Emoji are one character each after normalization, not two UTF-16 units.
  { name: "7 emoji (14 UTF-16 units)", passphrase: "😀😁😂🤣😃😄😅", reason: /at least 15/ },
];
for (const c of refused) {
  Deno.test(`passphraseProblem() refuses ${c.name}`, () => {
    match(passphraseProblem(c.passphrase) ?? "", c.reason);
  });
}

const accepted = [
  "violet tractor museum 42 lantern",
  "Zähne putzen nicht vergessen!",
  "x".repeat(10) + "abcde" + "12345",
  "😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🥰",
];
for (const passphrase of accepted) {
  Deno.test(`passphraseProblem() accepts "${passphrase.slice(0, 12)}…"`, () => {
    equal(passphraseProblem(passphrase), null);
  });
}

const configs: { name: string; value: unknown; isValid: boolean }[] = [
  { name: "the defaults", value: {}, isValid: true },
  { name: "a file under auth/", value: { initialPassphraseFile: "auth/first" }, isValid: true },
  { name: "a file outside auth/", value: { initialPassphraseFile: "config.yaml" }, isValid: false },
  { name: "a path escape", value: { initialPassphraseFile: "auth/../x" }, isValid: false },
  { name: "an idle timeout of 0", value: { idleTimeoutMinutes: 0 }, isValid: false },
  { name: "an unknown key", value: { lockout: false }, isValid: false },
];
for (const c of configs) {
  Deno.test(`AuthConfigSchema ${c.isValid ? "accepts" : "refuses"} ${c.name}`, () => {
    equal(AuthConfigSchema.safeParse(c.value).success, c.isValid);
  });
}
