import assert from "node:assert/strict";
import { join } from "node:path";
import { compile } from "../../scripts/compile.ts";
import {
  denoErrorCause,
  isStripped,
  packageId,
  PAYLOAD_BUDGET,
  pruneLock,
  stage,
} from "../../scripts/compile_stage.ts";
import { VERSION } from "../../lib/runtime/version.ts";
import { testTempDir } from "../support/leftovers.ts";

// What goes into the binary, checked where the binary itself cannot be built or run (no denort):
// the stage it is compiled from, that stage run by deno from its own files, and the list of files
// deno compile embeds from it. For that list the deno executable stands in for denort: deno
// compile builds and writes its whole virtual file system the same way; only the base binary
// differs, so that output is never run as bronze (binary_test.ts runs a real one where it can).

const RUNTIME_IMPORTS = [
  "@aws-sdk/client-s3",
  "@electric-sql/pglite",
  "@electric-sql/pglite/contrib/btree_gist",
  "@google-cloud/storage",
  "@stellar/stellar-sdk",
  "commander",
  "hyparquet",
  "hyparquet-writer",
  "node-pg-migrate",
  "pg",
];
const PGLITE = "node_modules/.deno/@electric-sql+pglite@0.5.14/node_modules/@electric-sql/pglite";
/** Files the binary cannot run without, none of them reached by an import. */
const MUST_EMBED = [
  "build_info.json",
  "deno.json",
  "lib/copy/_worker.ts",
  "migrations/001_meta_catalog.sql",
  "lib/metadata/_catalog_template.zst",
  `${PGLITE}/dist/pglite.wasm`,
  `${PGLITE}/dist/pglite.data`,
  `${PGLITE}/dist/btree_gist.tar.gz`,
  `${PGLITE}/dist/contrib/btree_gist.js`,
];
const TEST_ONLY = /@duckdb|\.test-servers|firebase-tools|s3rver/;

const st = await stage({
  gitSha: "0123456789abcdef0123456789abcdef01234567",
  dir: await testTempDir("compile"),
});
globalThis.addEventListener("unload", () => Deno.removeSync(st.dir, { recursive: true }));

function deno(args: string[], cwd = st.dir) {
  const out = new Deno.Command(Deno.execPath(), { args, cwd, stdout: "piped", stderr: "piped" })
    .outputSync();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("compile stage: only the imports the binary's module graph reaches", () => {
  assert.deepEqual(Object.keys(st.imports).sort(), RUNTIME_IMPORTS);
  const lock = JSON.parse(Deno.readTextFileSync(join(st.dir, "deno.lock")));
  assert.deepEqual(Object.keys(lock.npm), st.lockPackages);
  assert.equal(st.lockPackages.filter((k) => TEST_ONLY.test(k)).length, 0);
  // every locked package is installed and measured, and nothing else is
  const installed = new Set(st.lockPackages.map(packageId));
  const measured = [...st.payload.packages.keys()].filter((k) => !k.startsWith("("));
  assert.deepEqual(measured.sort(), [...installed].sort());
});

Deno.test("compile stage: payload under budget, without test-only packages, maps or types", () => {
  const p = st.payload;
  assert.ok(p.bytes <= PAYLOAD_BUDGET, `payload ${p.bytes} over budget ${PAYLOAD_BUDGET}`);
  assert.ok(p.bytes > 30e6, `payload ${p.bytes}: PGlite and the SDKs alone are more`);
  assert.equal(p.bytes, [...p.packages.values()].reduce((n, u) => n + u.bytes, p.sources.bytes));
  assert.equal(p.files, p.paths.length);
  assert.deepEqual(p.paths.filter((f) => TEST_ONLY.test(f)), []);
  assert.deepEqual(p.paths.filter(isStripped), []);
  assert.ok(!p.paths.includes("deno.lock"));
  for (const f of MUST_EMBED) assert.ok(p.paths.includes(f), `${f} not in the payload`);
  assert.ok(st.stripped.bytes > 40e6, `only ${st.stripped.bytes} bytes stripped`);
});

Deno.test("compile stage: bronze runs from the staged files (--version, migrate, every import)", async () => {
  const version = deno(["run", "-A", "--cached-only", "--frozen", "main.ts", "--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(
    version.stdout,
    `bronze ${VERSION} (git 0123456789abcdef0123456789abcdef01234567)\n`,
  );
  const state = await testTempDir("stage-state");
  try {
    const migrate = deno(["run", "-A", "--cached-only", "--frozen", "main.ts", "migrate"].concat(
      ["--state-dir", state],
    ));
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /applied 001_meta_catalog/);
  } finally {
    Deno.removeSync(state, { recursive: true });
  }
  // lazily imported packages too (S3, GCS): each one loads from what was kept of it
  const code = `for (const k of ${JSON.stringify(RUNTIME_IMPORTS)}) await import(k);`;
  const all = deno(["eval", "--cached-only", "--frozen", code]);
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(st.payload.paths.filter(isStripped), []);
});

Deno.test("pruneLock keeps the requested packages and their dependencies, peers resolved", () => {
  const lock = {
    version: "5",
    specifiers: { "npm:a@1": "1.0.0", "npm:test-only@2": "2.0.0" },
    npm: {
      "a@1.0.0": { integrity: "x", dependencies: ["b", "c@2.0.0"], optionalDependencies: ["d"] },
      "b@1.0.0_c@2.0.0": { integrity: "x", dependencies: ["c@2.0.0"] },
      "c@1.0.0": { integrity: "x" },
      "c@2.0.0": { integrity: "x" },
      "d@1.0.0": { integrity: "x", os: ["darwin"] },
      "test-only@2.0.0": { integrity: "x", dependencies: ["c@1.0.0"] },
    },
    workspace: { dependencies: ["npm:a@1", "npm:test-only@2"] },
  };
  const pruned = pruneLock(lock, ["npm:a@1"]);
  assert.deepEqual(pruned.specifiers, { "npm:a@1": "1.0.0" });
  assert.deepEqual(Object.keys(pruned.npm!), ["a@1.0.0", "b@1.0.0_c@2.0.0", "c@2.0.0", "d@1.0.0"]);
  assert.deepEqual(pruned.workspace, { dependencies: ["npm:a@1"] });
  assert.throws(() => pruneLock(lock, ["npm:e@1"]), /no entry for npm:e@1/);
  assert.throws(() => pruneLock({ ...lock, version: "4" }, ["npm:a@1"]), /version 4/);
});

Deno.test("packageId drops only the peer suffix", () => {
  assert.equal(packageId("string_decoder@1.3.0"), "string_decoder@1.3.0");
  assert.equal(packageId("@exodus/bytes@1.16.0_@noble+hashes@2.4.0"), "@exodus/bytes@1.16.0");
  assert.equal(
    packageId("@electric-sql/pglite-pg_ivm@0.0.15_@electric-sql+pglite@0.5.14"),
    "@electric-sql/pglite-pg_ivm@0.0.15",
  );
});

Deno.test("denoErrorCause: the cause chain in one line", () => {
  const notElf = "\x1b[1m\x1b[31merror\x1b[0m: Writing deno compile executable to temporary file " +
    "'b.tmp-1'\n\nCaused by:\n    0: Writing binary bytes\n    1: Invalid object: Not an ELF " +
    "file\n\nStack backtrace:\n   0: <unknown>\n";
  assert.equal(denoErrorCause(notElf), "Writing binary bytes: Invalid object: Not an ELF file");
  const download = "error: Writing deno compile executable\n\nCaused by:\n    0: Setting up base " +
    "binary.\n    1: error sending request for url (https://h/denort.zip): client error " +
    "(Connect): dns error: lookup failed\n    2: client error (Connect)\n    3: dns error\n" +
    "    4: lookup failed\n";
  assert.equal(
    denoErrorCause(download),
    "Setting up base binary: error sending request for url (https://h/denort.zip): client error " +
      "(Connect): dns error: lookup failed",
  );
  assert.equal(denoErrorCause('error: Module not found "x".\n'), 'Module not found "x".');
});

Deno.test("compile: over its budget, stops before compiling, in one line", async () => {
  const lines: string[] = [];
  const r = await compile(join(st.dir, "never-built"), { budget: 1e6, log: (l) => lines.push(l) });
  assert.ok(!r.ok && !r.cannotBuild);
  assert.match(r.reason, /^the payload \([\d.]+ MB\) is over its budget of 1\.0 MB /);
  assert.match(lines.join("\n"), /^\[compile\] payload [\d.]+ MB in \d+ files .*@electric-sql/);
  await assert.rejects(Deno.stat(join(st.dir, "never-built")));
});

Deno.test("compile: a DENORT_BIN that is not a denort fails with its cause in one line", async () => {
  const dir = await testTempDir("bad-denort");
  try {
    const text = join(dir, "denort");
    await Deno.writeTextFile(text, "not a binary\n");
    const bad = await compile(join(dir, "bronze"), { denort: text, log: () => {} });
    assert.ok(!bad.ok && !bad.cannotBuild);
    assert.match(bad.reason, /^deno compile failed: .*Not an ELF file; DENORT_BIN=.* must be/);
    assert.doesNotMatch(bad.reason, /\n/);
    const missing = await compile(join(dir, "bronze"), {
      denort: join(dir, "nope"),
      log: () => {},
    });
    assert.ok(!missing.ok);
    assert.match(missing.reason, /Could not find denort at '.*nope': No such file or directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "deno compile (the deno executable standing in for denort) embeds exactly the stage",
  async fn() {
    const dir = await testTempDir("standin");
    try {
      const r = await compile(join(dir, "bronze"), {
        denort: Deno.execPath(),
        listEmbedded: true,
        log: () => {},
      });
      // the build is checked before it is reported built: this one is deno, not bronze
      assert.ok(!r.ok && !r.cannotBuild);
      assert.match(r.reason, /does not run as bronze: `bronze --version` printed "deno /);
      await assert.rejects(Deno.stat(join(dir, "bronze")), "a failed build is not left behind");
      const embedded = r.embedded ?? [];
      const payload = new Set(r.payload!.paths);
      assert.ok(embedded.length > 1000, `deno's debug log listed ${embedded.length} files`);
      assert.deepEqual(embedded.filter((f) => !payload.has(f)), [], "embedded, not measured");
      // measured but not embedded: only lib/ modules outside the graph (payload is an upper bound)
      const unused = [...payload].filter((f) => !embedded.includes(f));
      assert.deepEqual(unused.filter((f) => !/^lib\/.*\.ts$/.test(f)), []);
      for (const f of MUST_EMBED) assert.ok(embedded.includes(f), `${f} not embedded`);
      assert.deepEqual(embedded.filter((f) => TEST_ONLY.test(f)), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
