/**
 * `deno task compile`: builds the single `./bronze` binary with every run-time file inside it
 * (migrations, PGlite's wasm and data files, the build worker's module, the build's git sha).
 *
 * `deno compile` downloads its runtime (denort) from Deno's download host unless DENORT_BIN names
 * a local one; where neither works this stops with one line saying so (exit 3), which the binary
 * test reads as "cannot build here".
 */
import { dirname, join, relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { gitSha } from "../lib/version.ts";

export const CANNOT_BUILD_EXIT = 3;
const ROOT = join(dirname(fromFileUrl(import.meta.url)), "..");

export async function compile(
  output = join(ROOT, "bronze"),
): Promise<{ ok: true } | { ok: false; reason: string }> {
  // The binary has no repository beside it: its git sha travels in build_info.json, which exists
  // only while compiling (left behind, it would give source runs a stale sha).
  const info = join(ROOT, "build_info.json");
  await Deno.writeTextFile(info, JSON.stringify({ gitSha: gitSha() }) + "\n");
  try {
    return await build(output);
  } finally {
    await Deno.remove(info).catch(() => {});
  }
}

async function build(output: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  const pgliteDist = dirname(fromFileUrl(import.meta.resolve("@electric-sql/pglite")));
  const args = [
    "compile",
    "-A",
    "--no-check",
    "--output",
    output,
    "--include",
    "migrations",
    "--include",
    "build_info.json",
    // Loaded by `new Worker(...)`, not by an import: the module graph alone would miss it.
    "--include",
    "lib/copy/_worker.ts",
    "--include",
    relative(ROOT, pgliteDist),
    "main.ts",
  ];
  const denort = Deno.env.get("DENORT_BIN");
  if (denort) {
    try {
      await Deno.stat(denort);
    } catch {
      return { ok: false, reason: `DENORT_BIN=${denort} does not exist` };
    }
  }
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (result.success) return { ok: true };
  // deno-lint-ignore no-control-regex
  const stderr = new TextDecoder().decode(result.stderr).replace(/\x1b\[[0-9;]*m/g, "");
  const lines = stderr.split("\n").map((l) => l.replace(/^\s*\d+:\s*/, "").trim()).filter(Boolean);
  const download = lines.find((l) => l.includes("denort") && /error sending request/.test(l));
  if (download && !denort) {
    const what = /denort-[\w.-]+\.zip/.exec(download)?.[0] ?? "denort";
    const cause = lines.filter((l) => !/^Stack backtrace|^<unknown>/.test(l)).at(-1);
    return {
      ok: false,
      reason: `deno compile could not download its runtime ${what} (${cause}); ` +
        `set DENORT_BIN to a local denort of Deno ${Deno.version.deno}`,
    };
  }
  return {
    ok: false,
    reason: `deno compile failed: ${lines.find((l) => /error/i.test(l)) ?? lines.at(-1)}`,
  };
}

if (import.meta.main) {
  const output = Deno.args[0] ?? join(ROOT, "bronze");
  const r = await compile(output);
  if (r.ok) {
    console.error(`built ${relative(Deno.cwd(), output) || output}`);
  } else {
    console.error(`bronze compile: cannot build the binary: ${r.reason}`);
    Deno.exit(CANNOT_BUILD_EXIT);
  }
}
