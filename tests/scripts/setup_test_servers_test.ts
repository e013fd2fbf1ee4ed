/**
 * scripts/setup-test-servers.ts says what it does before npm's silent minutes, and a failed npm
 * install ends in one line pointing at npm's own output. (The real install is what every test
 * server starts from; here npm is a stand-in that fails at once, in a copy of the project without
 * `.test-servers/`.)
 */
import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../support/lakes.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("setup-test-servers: the first run says it installs the test servers with npm, and a failed install says where to look", async () => {
  await using clone = await tempDir("setup");
  // The script alone: it needs nothing but Deno's node: modules.
  await Deno.mkdir(join(clone.path, "scripts"));
  await cp(
    join(ROOT, "scripts/setup-test-servers.ts"),
    join(clone.path, "scripts/setup-test-servers.ts"),
  );
  const bin = join(clone.path, "bin");
  await Deno.mkdir(bin);
  await Deno.writeTextFile(
    join(bin, "npm"),
    "#!/bin/sh\necho 'npm: no network here' >&2\nexit 7\n",
    {
      mode: 0o755,
    },
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-lock", "scripts/setup-test-servers.ts"],
    cwd: clone.path,
    env: { PATH: `${bin}:/usr/bin:/bin`, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.notEqual(out.code, 0, stderr);
  const lines = stderr.split("\n");
  assert.equal(
    lines[0],
    `installing the test servers (s3rver@3.7.1, firebase-tools@15.34.2) with npm into ${clone.path}/.test-servers/: once per clone, a few minutes…`,
  );
  assert.equal(lines[1], "npm: no network here");
  assert.match(
    stderr,
    /npm install of s3rver@3\.7\.1 firebase-tools@15\.34\.2 into \S+ failed \(exit 7\): npm's output above says why/,
  );
});
