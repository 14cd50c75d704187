import assert, { deepEqual, equal, throws } from "node:assert/strict";
import {
  buildManifest,
  type ControlSpecInput,
  DEFAULT_CONTROLS,
  ManifestError,
} from "./manifest.ts";

const base = (name: string, extra: Partial<ControlSpecInput> = {}): ControlSpecInput => ({
  name,
  description: name,
  entry: `workers/${name}/mod.ts`,
  ...extra,
});

Deno.test("buildManifest() orders providers before their callers", () => {
  const m = buildManifest(DEFAULT_CONTROLS);
  // Every control starts after the providers of the contracts it uses (the exact list grows
  // with each control, so the property is checked, not the list).
  deepEqual([...m.startOrder].sort(), m.controls.map((c) => c.name).sort());
  for (const c of m.controls) {
    for (const api of c.uses) {
      const provider = m.providers.get(api) ?? "";
      if (provider === "supervisor") continue;
      assert(
        m.startOrder.indexOf(provider) < m.startOrder.indexOf(c.name),
        `${provider} < ${c.name}`,
      );
    }
  }
  equal(m.startOrder[0], "audit");
  equal(m.providers.get("audit-append"), "audit");
  equal(m.providers.get("system"), "supervisor");
});

const broken: { name: string; controls: ControlSpecInput[]; message: RegExp }[] = [
  {
    name: "a contract nobody provides",
    controls: [base("a", { uses: ["ghost"] })],
    message: /uses "ghost", which no control provides/,
  },
  { name: "a duplicate control", controls: [base("a"), base("a")], message: /declared twice/ },
  {
    name: "two providers of one contract",
    controls: [base("a", { provides: ["x"] }), base("b", { provides: ["x"] })],
    message: /provided by both "a" and "b"/,
  },
  {
    name: "a dependency cycle",
    controls: [
      base("a", { provides: ["x"], uses: ["y"] }),
      base("b", { provides: ["y"], uses: ["x"] }),
    ],
    message: /Dependency cycle: a → b → a/,
  },
  {
    name: "a path escaping its root",
    controls: [base("a", { permissions: { read: ["home:../etc"] } })],
    message: /must not contain/,
  },
  {
    name: "an absolute path grant",
    controls: [base("a", { permissions: { read: ["/etc"] } })],
    message: /home:<relative path>/,
  },
  {
    name: "a run or ffi grant (not expressible)",
    controls: [
      base("a", { permissions: { run: true } as unknown as ControlSpecInput["permissions"] }),
    ],
    message: /Unrecognized key/,
  },
  {
    name: "a job module outside the control's jobs/ folder",
    controls: [base("a", { jobs: { evil: "runtime/cli.ts" } })],
    message: /Invalid manifest at "0.jobs.evil"/,
  },
];
for (const c of broken) {
  Deno.test(`buildManifest() refuses ${c.name}`, () => {
    throws(() => buildManifest(c.controls), (err: unknown) => {
      assert(err instanceof ManifestError);
      equal(err.code, "MANIFEST_INVALID");
      assert(c.message.test(err.message), err.message);
      return true;
    });
  });
}
