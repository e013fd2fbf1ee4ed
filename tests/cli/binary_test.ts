import assert from "node:assert/strict";
import { join } from "node:path";
import { compile } from "../../scripts/compile.ts";
import { VERSION } from "../../lib/runtime/version.ts";
import { testTempDir } from "../support/leftovers.ts";

// The single binary is built once for this file. Building needs deno's runtime (denort): where it
// cannot be had (no DENORT_BIN, no route to Deno's download host) these tests are skipped and the
// reason is printed, never silently passed; what would go into the binary is still checked, by
// compile_test.ts. A DENORT_BIN that is set but does not build a working binary fails here.
const dir = await testTempDir("bin");
const binary = join(dir, "bronze");
const build = await compile(binary, { listEmbedded: true, log: () => {} });
const skip = !build.ok && build.cannotBuild ? build.reason : false;
if (skip) {
  console.log(
    `SKIPPED compiled-binary tests: ${skip} (compile_test.ts checks the payload and the files ` +
      `deno compile embeds)`,
  );
}
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

async function run(args: string[], cwd = dir) {
  const out = await new Deno.Command(binary, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: "compiled binary: builds with only the run-time packages inside",
  ignore: !!skip,
  fn() {
    assert.ok(build.ok, build.ok ? "" : build.reason);
    const packages = new Set(
      (build.embedded ?? []).map((f) => /^node_modules\/\.deno\/([^/]+)\//.exec(f)?.[1])
        .filter((p) => p !== undefined),
    );
    assert.ok(packages.size > 100, `only ${packages.size} packages embedded`);
    for (const p of packages) assert.doesNotMatch(p!, /^@duckdb\+/);
    for (const p of ["@electric-sql+pglite@", "pg@", "@stellar+stellar-sdk@", "commander@"]) {
      assert.ok([...packages].some((k) => k!.startsWith(p)), `${p} not embedded`);
    }
    assert.deepEqual((build.embedded ?? []).filter((f) => /\.test-servers|\.map$/.test(f)), []);
  },
});

Deno.test({
  name: "compiled binary: --version prints the producer version and git sha",
  ignore: !build.ok,
  async fn() {
    const r = await run(["--version"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^bronze ${VERSION.replaceAll(".", "\\.")} \\(git [0-9a-f]{40}\\)\\n$`),
    );
  },
});

Deno.test({
  name: "compiled binary: migrate on an embedded catalog in a temp dir, with no PostgreSQL",
  ignore: !build.ok,
  async fn() {
    const r = await run(["migrate", "--state-dir", join(dir, "state")]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied 001_meta_catalog/);
    const again = await run(["migrate", "--state-dir", join(dir, "state")]);
    assert.match(again.stdout, /no migrations to apply/);
  },
});
