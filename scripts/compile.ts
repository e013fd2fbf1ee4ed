/**
 * `deno task compile`: builds the single `./bronze` binary with every run-time file inside it
 * (migrations, the embedded catalog's template, PGlite's wasm and data files, the build worker's
 * module, the build's git sha) and only the run-time npm packages: it compiles from a stage (see
 * scripts/compile_stage.ts), prints the payload that goes in, and stops if the payload is over its
 * budget.
 *
 * `deno compile` downloads its runtime (denort) from Deno's download host unless DENORT_BIN names
 * a local one; where neither works this stops with one line saying so (exit 3), which the binary
 * test reads as "cannot build here". Any other failure (a DENORT_BIN that is no denort or of
 * another Deno, a payload over budget, a lock that does not install) exits 1 with its cause in one
 * line. A built binary is run once (`--version`) before it is reported built.
 */
import { basename, join, relative, resolve } from "node:path";
import { gitSha, VERSION } from "../lib/runtime/version.ts";
import {
  denoErrorCause,
  describePayload,
  ENTRY,
  mb,
  type Payload,
  PAYLOAD_BUDGET,
  ROOT,
  type Stage,
  stage,
  WORKER,
} from "./compile_stage.ts";

export const CANNOT_BUILD_EXIT = 3; // as EXIT_MEANINGS (lib/errors.ts) says

/**
 * The V8 flags bronze runs with, baked into the binary (as main.ts's shebang and the bronze and
 * demo tasks of deno.json give them; tests/scripts/v8_flags_test.ts holds them equal). Liftoff
 * only: PGlite's WebAssembly is compiled once, quickly, and not tiered up by TurboFan on
 * background threads while bronze works. Measured (paired, busy 2-core VM): opening the embedded
 * catalog 0.76 of the CPU and 32 MB less; a 2,000 x 372 KB copy on it at c=2 0.87 of the CPU and
 * 326 against 400 MB peak, its commits no slower. V8 takes flags only at start: `node:v8`'s
 * setFlagsFromString does nothing in Deno.
 */
export const V8_FLAGS = ["--liftoff-only"];

export type CompileResult =
  | { ok: true; payload: Payload; embedded?: string[] }
  | { ok: false; cannotBuild: boolean; reason: string; payload?: Payload; embedded?: string[] };

export interface CompileOptions {
  /** The base binary; defaults to $DENORT_BIN, else deno compile downloads it. */
  denort?: string;
  /** Where the `[compile] payload …` line goes; stderr by default. */
  log?: (line: string) => void;
  /** Run the built binary's `--version` before reporting success (default true). */
  verify?: boolean;
  /** Also return every file deno compile embedded (read from its debug log), stage-relative. */
  listEmbedded?: boolean;
  /** The largest payload accepted, in bytes (PAYLOAD_BUDGET). */
  budget?: number;
}

export async function compile(
  output = join(ROOT, "bronze"),
  opts: CompileOptions = {},
): Promise<CompileResult> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const denort = "denort" in opts ? opts.denort : Deno.env.get("DENORT_BIN");
  output = resolve(output);
  let st: Stage;
  try {
    st = await stage({ gitSha: gitSha() });
  } catch (e) {
    return { ok: false, cannotBuild: false, reason: `staging failed: ${(e as Error).message}` };
  }
  try {
    const payload = st.payload;
    log(`[compile] ${describePayload(payload)}`);
    const budget = opts.budget ?? PAYLOAD_BUDGET;
    if (payload.bytes > budget) {
      return {
        ok: false,
        cannotBuild: false,
        payload,
        reason: `the payload (${mb(payload.bytes)}) is over its budget of ${mb(budget)} ` +
          `(PAYLOAD_BUDGET in scripts/compile_stage.ts)`,
      };
    }
    const built = await build(st, output, denort, opts.listEmbedded ?? false);
    if (!built.ok) return { ...built, payload };
    if (opts.verify ?? true) {
      const bad = await runsAsBronze(output, denort);
      if (bad) {
        await Deno.remove(output).catch(() => {});
        return { ok: false, cannotBuild: false, reason: bad, payload, embedded: built.embedded };
      }
    }
    return { ok: true, payload, embedded: built.embedded };
  } finally {
    await st.remove();
  }
}

async function build(
  st: Stage,
  output: string,
  denort: string | undefined,
  listEmbedded: boolean,
): Promise<
  { ok: true; embedded?: string[] } | { ok: false; cannotBuild: boolean; reason: string }
> {
  const dir = await Deno.realPath(st.dir);
  const pgliteDist = relative(
    dir,
    await Deno.realPath(join(dir, "node_modules/@electric-sql/pglite/dist")),
  );
  const args = [
    "compile",
    "-A",
    "--no-check",
    "--frozen",
    ...(listEmbedded ? ["--log-level=debug"] : []),
    `--v8-flags=${V8_FLAGS.join(",")}`,
    "--output",
    output,
    "--include",
    "migrations",
    "--include",
    "build_info.json",
    // The embedded catalog's template, read beside its module on first use.
    "--include",
    "lib/metadata/_catalog_template.zst",
    // Loaded by `new Worker(...)`, not by an import: the module graph alone would miss it.
    "--include",
    WORKER,
    // PGlite reads its wasm and data files beside its modules.
    "--include",
    pgliteDist,
    ENTRY,
  ];
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  if (denort) env.DENORT_BIN = denort;
  env.NO_COLOR = "1";
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: dir,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  if (result.success) {
    if (!listEmbedded) return { ok: true };
    const embedded = [...stderr.matchAll(/Adding file '([^']+)'/g)]
      .map((m) => relative(dir, m[1]).split("\\").join("/"));
    return { ok: true, embedded: [...new Set(embedded)].sort() };
  }
  const cause = denoErrorCause(stderr);
  if (!denort && /base binary|denort-[\w.-]+\.zip|error sending request/.test(cause)) {
    const what = /denort-[\w.-]+\.zip/.exec(stderr)?.[0] ?? "denort";
    return {
      ok: false,
      cannotBuild: true,
      reason:
        `deno compile could not download its runtime ${what} (${cause.split(": ").at(-1)}); ` +
        `set DENORT_BIN to a local denort of Deno ${Deno.version.deno}`,
    };
  }
  const hint = denort && /ELF|denort|binary/i.test(cause)
    ? `; DENORT_BIN=${denort} must be the denort of Deno ${Deno.version.deno} for ${Deno.build.target}`
    : "";
  return { ok: false, cannotBuild: false, reason: `deno compile failed: ${cause}${hint}` };
}

/** Null when `output --version` answers as this bronze; else why not, in one line. */
async function runsAsBronze(output: string, denort: string | undefined): Promise<string | null> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(output, {
      args: ["--version"],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
  } catch (e) {
    return `the built binary does not start: ${(e as Error).message}`;
  }
  const stdout = new TextDecoder().decode(out.stdout).trim();
  if (out.success && stdout.startsWith(`bronze ${VERSION} `)) return null;
  const said = stdout.split("\n")[0] || denoErrorCause(new TextDecoder().decode(out.stderr));
  return `the built binary does not run as bronze: \`${basename(output)} --version\` ` +
    (out.success ? `printed "${said}"` : `exited ${out.code}: ${said}`) +
    (denort
      ? `; is DENORT_BIN=${denort} the denort of Deno ${Deno.version.deno} for ${Deno.build.target}?`
      : "");
}

if (import.meta.main) {
  const output = resolve(Deno.args[0] ?? join(ROOT, "bronze"));
  const r = await compile(output);
  if (r.ok) {
    const size = (await Deno.stat(output)).size;
    console.error(`[compile] built ${relative(Deno.cwd(), output) || output} (${mb(size)})`);
  } else {
    console.error(`bronze compile: cannot build the binary: ${r.reason}`);
    Deno.exit(r.cannotBuild ? CANNOT_BUILD_EXIT : 1);
  }
}
