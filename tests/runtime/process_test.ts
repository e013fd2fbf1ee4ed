import assert from "node:assert/strict";
import { processAlive } from "../../lib/runtime/process.ts";

Deno.test("processAlive: this process is; a finished child and a thread id are not", async () => {
  assert.equal(processAlive(Deno.pid), true);
  const child = new Deno.Command("true").spawn();
  await child.status;
  assert.equal(processAlive(child.pid), false);
  // A thread of this process has its own /proc entry, but it is not a process.
  const tids = [...Deno.readDirSync(`/proc/${Deno.pid}/task`)].map((e) => Number(e.name)).filter((
    t,
  ) => t !== Deno.pid);
  assert.ok(tids.length > 0);
  assert.equal(processAlive(tids[0]), false);
});
