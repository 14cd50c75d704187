/**
 * The state dir (`$SECAI_HOME`, default `~/.local/share/secai`): everything the runtime
 * keeps lives here, private to the user.
 * @module
 */

/** Sub-directories created on start. */
export const HOME_DIRS = ["audit", "auth", "logs", "policy", "run", "jobs"] as const;

/**
 * Picks the state dir: explicit flag, then SECAI_HOME, then the XDG default.
 * @returns an absolute path
 */
export function resolveHome(
  flag: string | undefined,
  env: { get(key: string): string | undefined },
): string {
  const chosen = flag ?? env.get("SECAI_HOME") ?? defaultHome(env);
  if (!chosen) throw new TypeError("Cannot determine the state dir: set SECAI_HOME or pass --home");
  return chosen.startsWith("/") ? chosen : `${Deno.cwd()}/${chosen}`;
}

function defaultHome(env: { get(key: string): string | undefined }): string | undefined {
  const xdg = env.get("XDG_DATA_HOME");
  if (xdg?.startsWith("/")) return `${xdg}/secai`;
  const home = env.get("HOME");
  return home ? `${home}/.local/share/secai` : undefined;
}

/** Creates the state dir and its sub-dirs, private to the user (0700). */
export async function prepareHome(home: string): Promise<string> {
  await Deno.mkdir(home, { recursive: true, mode: 0o700 });
  const real = await Deno.realPath(home);
  for (const dir of HOME_DIRS) await Deno.mkdir(`${real}/${dir}`, { recursive: true, mode: 0o700 });
  return real;
}
