import assert from "node:assert/strict";
import { createLogger } from "../../lib/runtime/log.ts";
import { Progress } from "../../lib/runtime/progress.ts";

Deno.test("log lines: the seed's [tag] text, [warn] lines, and one JSON object per line with --log-format json", () => {
  const text: string[] = [];
  const t = createLogger("text", (l) => text.push(l), false);
  t.info("partition", "committed range 1-10000", { checksum: "sha256:ab" });
  t.warn("checkpoint", "save failed");
  assert.deepEqual(text, ["[partition] committed range 1-10000", "[warn] checkpoint: save failed"]);

  const json: string[] = [];
  const j = createLogger("json", (l) => json.push(l), true);
  assert.equal(j.live, false, "no live line in json mode, even on a terminal");
  j.info("partition", "committed range 1-10000", { checksum: "sha256:ab", bytes: 12 });
  const o = JSON.parse(json[0]);
  assert.match(o.time, /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual({ ...o, time: 0 }, {
    time: 0,
    level: "info",
    tag: "partition",
    message: "committed range 1-10000",
    checksum: "sha256:ab",
    bytes: 12,
  });
});

Deno.test("progress: plain [progress] lines off a terminal only when an interval is set", async () => {
  const lines: string[] = [];
  const log = createLogger("text", (l) => lines.push(l), false);
  const silent = new Progress(log, 0);
  silent.begin(10);
  silent.add(5, 1000);
  assert.deepEqual(lines, []);
  const every = new Progress(log, 0.001);
  every.begin(10);
  await new Promise((r) => setTimeout(r, 5));
  every.add(5, 5_000_000);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0],
    /^\[progress\] 5\/10 ledgers \(50\.0%\) {2}\d+ ledgers\/s {2}[\d.]+ MB\/s {2}ETA \S+$/,
  );
});
