/**
 * Lag of a follower: the time from a ledger landing in the lake to its commit, with
 * `copy --follow --flush-interval`. A synthetic lake is written at a steady pace (one ledger per
 * second by default, as Galexie does for pubnet's 5-6 s ledgers, only faster), a follower with the
 * default poll interval commits what it can, and each ledger's lag is measured from the moment
 * this script published it to the moment the follower logged its partition's commit.
 *
 *   deno run -A scripts/bench-lag.ts [--ledgers 90] [--rate 1] [--flush 10s] [--poll 5s]
 */
import { parseArgs } from "node:util";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeLake } from "./make-lake.ts";
import { objectKey } from "../lib/source/lake_layout.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    ledgers: { type: "string", default: "90" },
    rate: { type: "string", default: "1" },
    flush: { type: "string", default: "10s" },
    poll: { type: "string", default: "5s" },
  },
});
const count = Number(values.ledgers);
const perSecond = Number(values.rate);
const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const work = await mkdtemp(join(tmpdir(), "bronze-lag-"));
try {
  const full = join(work, "full");
  await makeLake({ url: full, network: "testnet", start: 1, count, lcmVersion: 2 });
  const lake = join(work, "lake");
  await mkdir(lake);
  await copyFile(join(full, ".config.json"), join(lake, ".config.json"));
  const config = { ledgersPerBatch: 1, batchesPerPartition: 64000 } as never;
  const publish = async (seq: number) => {
    const key = objectKey(config, seq, "zst");
    await mkdir(dirname(join(lake, key)), { recursive: true });
    await copyFile(join(full, key), join(lake, key));
  };
  await publish(1);
  const published = new Map<number, number>([[1, performance.now()]]);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "copy",
      "--follow",
      "--start",
      "1",
      "--end",
      String(count),
      "--network",
      "testnet",
      "--source",
      lake,
      "--storage",
      join(work, "data"),
      "--state-dir",
      join(work, "state"),
      "--flush-interval",
      values.flush!,
      "--poll-interval",
      values.poll!,
      "--log-format",
      "json",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lags: number[] = [];
  const reading = (async () => {
    let buffered = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        const e = JSON.parse(line);
        if (e.tag !== "partition" || e.start === undefined) continue;
        const now = performance.now();
        for (let l = e.start; l <= e.end; l++) lags.push((now - published.get(l)!) / 1000);
        console.error(`[lag] committed ${e.start}-${e.end}`);
      }
    }
  })();
  for (let seq = 2; seq <= count; seq++) {
    await new Promise((r) => setTimeout(r, 1000 / perSecond));
    await publish(seq);
    published.set(seq, performance.now());
  }
  const status = await child.status;
  await reading;
  if (!status.success) throw new Error(`the follower failed (exit ${status.code})`);
  lags.sort((a, b) => a - b);
  const q = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))];
  console.log(
    `${lags.length} ledgers at ${perSecond}/s, --flush-interval ${values.flush}, --poll-interval ` +
      `${values.poll}: lag p50 ${q(0.5).toFixed(1)} s, p95 ${q(0.95).toFixed(1)} s, max ${
        lags.at(-1)!.toFixed(1)
      } s`,
  );
} finally {
  await rm(work, { recursive: true, force: true });
}
