import denoJson from "../../deno.json" with { type: "json" };

/** The producer version recorded in lineage rows and printed by `--version`. */
export const VERSION: string = (denoJson as { version: string }).version;
export const PRODUCER = `bronze@${VERSION}`;

let cachedSha: string | null | undefined;

/**
 * The git commit this build came from. `deno task compile` bakes it into build_info.json (the
 * binary has no repository beside it); from source it is asked of git, once.
 */
export function gitSha(): string | null {
  if (cachedSha !== undefined) return cachedSha;
  cachedSha = null;
  try {
    const info = JSON.parse(
      Deno.readTextFileSync(new URL("../../build_info.json", import.meta.url)),
    );
    if (typeof info.gitSha === "string") return (cachedSha = info.gitSha);
  } catch { /* not a compiled build */ }
  try {
    const out = new Deno.Command("git", {
      args: ["rev-parse", "HEAD"],
      cwd: new URL("../..", import.meta.url),
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (out.success) cachedSha = new TextDecoder().decode(out.stdout).trim() || null;
  } catch { /* git not installed */ }
  return cachedSha ?? null;
}
