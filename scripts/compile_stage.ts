/**
 * What `deno task compile` puts in the binary, worked out before anything is compiled (so it can be
 * checked on a machine that cannot compile).
 *
 * `deno compile` in a project with a local `node_modules` embeds that whole directory: every
 * package of the lock file (DuckDB's 139 MB of test-only bindings included) with its source maps and
 * type declarations. So the binary is compiled from a stage, a temporary directory holding:
 *
 * - `main.ts`, `lib/`, `migrations/`, `build_info.json` (the build's git sha);
 * - a `deno.json` whose `imports` are only the runtime ones: those that the module graph of
 *   `main.ts` and of the build worker (`lib/copy/_worker.ts`, loaded by `new Worker`) reaches;
 *   `@duckdb/node-api` and any other test-only import is left out;
 * - a `deno.lock` cut from the project's lock to exactly those imports and their dependencies, and a
 *   `node_modules` installed from it by `deno install --frozen` (so from the same integrity hashes);
 * - minus the files no run reads: source maps, type declarations and markdown docs (LICENSE files
 *   stay).
 *
 * The payload is every file of the stage but `deno.lock`. That is what `deno compile` embeds from
 * it (tests/cli/compile_test.ts compares the two file by file), give or take lib/: deno compile
 * leaves out lib/ modules outside the graph and adds the transpiled JavaScript of those inside,
 * a few hundred KB either way.
 */
import { cp, lstat, readdir, rm } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Module roots of the binary: the entry point and the build worker (not reachable by import). */
export const ENTRY = "main.ts";
export const WORKER = "lib/copy/_worker.ts";

/**
 * The largest payload `deno task compile` accepts, in bytes. Measured at 50.6 MB in 5675 files
 * (Deno 2.9.6, deno.lock of 2026-11): PGlite 20.2 MB (its wasm and data 16 MB), the Stellar SDK
 * 13.8 MB, the AWS and GCS clients with their dependencies most of the rest. 64 MB leaves ~13 MB
 * (25%) for dependency updates, which move it by a few MB a year, and still stops any one of the
 * mistakes this budget is for: a test-only package coming back (DuckDB's bindings alone are
 * 68 MB; the test emulators more), or the stripped source maps and type declarations (62 MB).
 */
export const PAYLOAD_BUDGET = 64_000_000;

export interface Usage {
  bytes: number;
  files: number;
}

export interface Payload extends Usage {
  /** Per npm package (`name@version`), what its folder adds. */
  packages: Map<string, Usage>;
  /** main.ts, lib/, migrations/, deno.json, build_info.json. */
  sources: Usage;
  /** Every embedded file, relative to the stage, `/`-separated. */
  paths: string[];
}

export interface Stage {
  dir: string;
  /** The `imports` of the stage's deno.json: the runtime ones. */
  imports: Record<string, string>;
  /** Keys of the stage's deno.lock `npm` section: every package installed. */
  lockPackages: string[];
  /** Files deleted from the installed node_modules: the bytes that stay out of the binary. */
  stripped: Usage;
  payload: Payload;
  remove(): Promise<void>;
}

/** Files that no run reads: source maps, type declarations, markdown docs. */
export function isStripped(path: string): boolean {
  return /\.(?:[cm]?js|[cm]?ts|jsx|tsx)\.map$/.test(path) || /\.d\.[cm]?ts$/.test(path) ||
    /\.(?:md|markdown)$/i.test(path);
}

/** Runs deno with `args` in `cwd`; a failure throws one line carrying its cause. */
async function deno(args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!out.success) {
    throw new Error(
      `deno ${args[0]} failed: ${denoErrorCause(new TextDecoder().decode(out.stderr))}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * One line from deno's error output: the `error:` line's cause chain (`Caused by: 0: … 1: …`) joined
 * by ": ", or the `error:` line itself. Lines a later one already says are dropped.
 */
export function denoErrorCause(stderr: string): string {
  // deno-lint-ignore no-control-regex
  const lines = stderr.replace(/\x1b\[[0-9;]*m/g, "").split("\n");
  const at = lines.findIndex((l) => /^error: /.test(l));
  if (at < 0) {
    return lines.map((l) => l.trim()).filter(Boolean).at(-1) ?? "no output";
  }
  const chain: string[] = [];
  const caused = lines.findIndex((l, i) => i > at && /^Caused by:/.test(l));
  if (caused > 0) {
    for (const l of lines.slice(caused + 1)) {
      const m = /^\s+(?:\d+: )?(.*\S)\s*$/.exec(l);
      if (!m) break;
      chain.push(m[1].replace(/\.$/, ""));
    }
  }
  if (chain.length === 0) {
    return lines.slice(at).map((l) => l.trim()).filter((l) => l && !/^Stack backtrace/.test(l))
      .join(" ").replace(/^error: /, "");
  }
  return chain.filter((c, i) => !chain.slice(0, i).some((prev) => prev.includes(c))).join(": ");
}

/**
 * The deno.json imports that the binary's module graph reaches, from `deno info` on its roots:
 * a test-only import (DuckDB) is in no module of that graph.
 */
export async function runtimeImports(root = ROOT): Promise<Record<string, string>> {
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
  const used = new Set<string>();
  for (const entry of [ENTRY, WORKER]) {
    const graph = JSON.parse(await deno(["info", "--json", "--frozen", entry], root)) as {
      modules: { dependencies?: { code?: { specifier?: string } }[] }[];
    };
    for (const m of graph.modules) {
      for (const d of m.dependencies ?? []) if (d.code?.specifier) used.add(d.code.specifier);
    }
  }
  const imports: Record<string, string> = {};
  for (const [k, v] of Object.entries(config.imports as Record<string, string>)) {
    if (used.has(v)) imports[k] = v;
  }
  return imports;
}

interface NpmEntry {
  dependencies?: string[];
  optionalDependencies?: string[];
  [k: string]: unknown;
}
interface Lock {
  version: string;
  specifiers?: Record<string, string>;
  npm?: Record<string, NpmEntry>;
  workspace?: { dependencies?: string[]; [k: string]: unknown };
  [k: string]: unknown;
}

/** `npm:@scope/name@1.2/sub/path` → `npm:@scope/name@1.2`; null for a non-npm specifier. */
export function npmRequest(specifier: string): string | null {
  const m = /^npm:\/?((?:@[^/@]+\/)?[^/@]+@[^/]+)/.exec(specifier);
  return m ? `npm:${m[1]}` : null;
}

const packageName = (key: string) => key.slice(0, key.indexOf("@", 1));

/**
 * The project's lock cut down to the npm requests in `requests` (`npm:name@range`) and everything
 * they depend on, optional dependencies included: what `deno install --frozen` needs for a config
 * with just those imports.
 */
export function pruneLock(lock: Lock, requests: string[]): Lock {
  if (lock.version !== "5") {
    throw new Error(`deno.lock is version ${lock.version}; the compile stage reads version 5`);
  }
  const npm = lock.npm ?? {};
  const keys = Object.keys(npm);
  // a dependency is named by its lock key, by name@version when that is unique, or by name
  const resolve = (dep: string): string => {
    if (npm[dep]) return dep;
    const hits = dep.indexOf("@", 1) > 0
      ? keys.filter((k) => k.startsWith(`${dep}_`))
      : keys.filter((k) => packageName(k) === dep);
    if (hits.length !== 1) {
      throw new Error(`deno.lock: cannot resolve dependency ${dep} (${hits.length} candidates)`);
    }
    return hits[0];
  };
  const specifiers: Record<string, string> = {};
  const pending: string[] = [];
  for (const request of [...new Set(requests)].sort()) {
    const resolved = lock.specifiers?.[request];
    if (!resolved) throw new Error(`deno.lock has no entry for ${request}: run deno install`);
    specifiers[request] = resolved;
    pending.push(`${packageName(request.slice(4))}@${resolved}`);
  }
  const seen = new Set<string>();
  while (pending.length) {
    const key = pending.pop()!;
    if (seen.has(key)) continue;
    if (!npm[key]) throw new Error(`deno.lock has no package ${key}`);
    seen.add(key);
    for (const dep of [...npm[key].dependencies ?? [], ...npm[key].optionalDependencies ?? []]) {
      pending.push(resolve(dep));
    }
  }
  return {
    ...lock,
    specifiers,
    npm: Object.fromEntries([...seen].sort().map((k) => [k, npm[k]])),
    workspace: { ...lock.workspace, dependencies: Object.keys(specifiers) },
  };
}

async function* walk(dir: string): AsyncGenerator<{ path: string; size: number }> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield { path, size: (await lstat(path)).size };
    // symlinks (node_modules' package links) are stored as links, without data
  }
}

/** A lock key without its peer-dependency suffix: `a_b@1.0.0_c@2.0.0` → `a_b@1.0.0`. */
export function packageId(key: string): string {
  const peers = key.indexOf("_", key.indexOf("@", 1));
  return peers < 0 ? key : key.slice(0, peers);
}

/** `node_modules/.deno/@aws-sdk+core@3.9.1_peer/…` → `@aws-sdk/core@3.9.1`. */
function packageOf(rel: string): string | null {
  const m = /^node_modules\/\.deno\/([^/]+)\/node_modules\//.exec(rel);
  if (!m) return rel.startsWith("node_modules/") ? "(node_modules metadata)" : null;
  return packageId(m[1].replace(/^@([^+]+)\+/, "@$1/"));
}

/** What `deno compile` embeds from a stage: all of it but the lock file. */
export async function measure(dir: string): Promise<Payload> {
  const payload: Payload = {
    bytes: 0,
    files: 0,
    packages: new Map(),
    sources: { bytes: 0, files: 0 },
    paths: [],
  };
  for await (const f of walk(dir)) {
    const rel = relative(dir, f.path).split(sep).join("/");
    if (rel === "deno.lock") continue;
    const pkg = packageOf(rel);
    const usage = pkg === null ? payload.sources : payload.packages.get(pkg) ??
      payload.packages.set(pkg, { bytes: 0, files: 0 }).get(pkg)!;
    usage.bytes += f.size;
    usage.files += 1;
    payload.bytes += f.size;
    payload.files += 1;
    payload.paths.push(rel);
  }
  payload.paths.sort();
  return payload;
}

export const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** `payload 49.6 MB in 3581 files (budget 64.0 MB): pkg 20.2 MB, … (181 packages, sources …)`. */
export function describePayload(p: Payload, top = 6): string {
  const ranked = [...p.packages].filter(([k]) => !k.startsWith("("))
    .sort((a, b) => b[1].bytes - a[1].bytes);
  const shown = ranked.slice(0, top).map(([k, u]) => `${k} ${mb(u.bytes)}`).join(", ");
  return `payload ${mb(p.bytes)} in ${p.files} files (budget ${mb(PAYLOAD_BUDGET)}): ${shown}, … ` +
    `(${ranked.length} packages; sources ${mb(p.sources.bytes)})`;
}

/**
 * Builds the stage in a new temporary directory (see the top of this file; `dir`: in this empty
 * one instead, which a test names for its sweep) and measures it. The caller removes it. Needs the
 * lock's packages in deno's cache (after `deno install`) or the npm registry; never writes in the
 * project.
 */
export async function stage(
  opts: { root?: string; gitSha?: string | null; dir?: string } = {},
): Promise<Stage> {
  const root = opts.root ?? ROOT;
  const imports = await runtimeImports(root);
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
  const lock = pruneLock(
    JSON.parse(await Deno.readTextFile(join(root, "deno.lock"))),
    Object.values(imports).map(npmRequest).filter((r): r is string => r !== null),
  );
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "bronze-compile-" });
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    for (const path of [ENTRY, "lib", "migrations"]) {
      await cp(join(root, path), join(dir, path), { recursive: true });
    }
    await Deno.writeTextFile(
      join(dir, "deno.json"),
      JSON.stringify(
        {
          version: config.version,
          compilerOptions: config.compilerOptions,
          unstable: config.unstable,
          nodeModulesDir: "auto",
          imports,
        },
        null,
        2,
      ) + "\n",
    );
    await Deno.writeTextFile(join(dir, "deno.lock"), JSON.stringify(lock, null, 2) + "\n");
    await Deno.writeTextFile(
      join(dir, "build_info.json"),
      JSON.stringify({ gitSha: opts.gitSha ?? null }) + "\n",
    );
    await deno(["install", "--frozen"], dir);
    const stripped: Usage = { bytes: 0, files: 0 };
    for await (const f of walk(join(dir, "node_modules"))) {
      if (!isStripped(f.path)) continue;
      await Deno.remove(f.path); // a link to deno's cache: removing it leaves the cache whole
      stripped.bytes += f.size;
      stripped.files += 1;
    }
    return {
      dir,
      imports,
      lockPackages: Object.keys(lock.npm ?? {}),
      stripped,
      payload: await measure(dir),
      remove,
    };
  } catch (e) {
    await remove();
    throw e;
  }
}
