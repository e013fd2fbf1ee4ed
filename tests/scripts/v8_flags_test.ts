/**
 * bronze's V8 flags (V8_FLAGS in scripts/compile.ts, baked into the binary) are the same wherever
 * bronze is started from source: main.ts's shebang, and the bronze and demo tasks of deno.json.
 */
import assert from "node:assert/strict";
import { V8_FLAGS } from "../../scripts/compile.ts";
import { EXIT_MS } from "../support/wait.ts";

const FLAG = `--v8-flags=${V8_FLAGS.join(",")}`;
const root = new URL("../../", import.meta.url);

Deno.test("main.ts's shebang and the bronze and demo tasks start deno with bronze's V8 flags", async () => {
  const shebang = (await Deno.readTextFile(new URL("main.ts", root))).split("\n")[0];
  assert.equal(shebang, `#!/usr/bin/env -S deno run -A ${FLAG}`);
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).tasks;
  assert.equal(tasks.bronze, `deno run -A ${FLAG} main.ts`);
  assert.equal(tasks.demo, `deno run -A ${FLAG} scripts/demo.ts`);
});

Deno.test("bronze's V8 flags are flags this deno's V8 accepts", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FLAG, new URL("main.ts", root).pathname, "--version"],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(EXIT_MS),
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(new TextDecoder().decode(out.stdout), /^bronze /);
});
