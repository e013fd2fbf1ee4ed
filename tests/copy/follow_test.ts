/**
 * `copy --follow` and `--end latest`, through the CLI, on a lake that grows while the copier runs:
 * the test writes it as Galexie would, object by object (copied from a lake made up front, so the
 * hash chain runs on), and reads the copier's stderr to know where it is.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CatalogTarget, catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv, lineageRows } from "../support/copy.ts";
import { tempDir } from "../support/lakes.ts";
import { Copier, growingLake, range } from "../support/growing.ts";
import { until } from "../support/wait.ts";

const SIZE = 20;

function env(target: CatalogTarget, lake: string, storage: string): Record<string, string> {
  return {
    ...copyEnv(target, lake, storage),
    PARTITION_SIZE: String(SIZE),
    POLL_INTERVAL: "100ms",
  };
}

const ranges = async (target: CatalogTarget) =>
  (await lineageRows(target)).map((r) => `${r.ledger_start}-${r.ledger_end}`);

Deno.test("follow a growing lake: complete cells are committed as they fill, the cell at the head waits; SIGINT commits the ledgers in hand (exit 130); a restart resumes without gap or overlap", async () => {
  await using target = await catalogTarget("postgres");
  await using dir = await tempDir();
  await using out = await tempDir();
  const lake = await growingLake(dir.path);
  await lake.publish(...range(1, 30));
  const e = env(target, lake.url, out.path);
  const copier = new Copier(e, ["--follow", "--start", "1"]);
  await copier.until(/\[partition\] committed range 1-20\n/);
  await copier.until(/\[follow\] caught up at ledger 30;/);
  assert.deepEqual(await ranges(target), ["1-20"]); // 21-30 waits for its cell to fill
  await lake.publish(...range(31, 70));
  await copier.until(/\[partition\] committed range 41-60\n/);
  await copier.until(/\[follow\] caught up at ledger 70;/);
  assert.deepEqual(await ranges(target), ["1-20", "21-40", "41-60"]);
  copier.child.kill("SIGINT");
  const status = await copier.end();
  assert.equal(status.code, 130, copier.text);
  assert.match(
    copier.text,
    /\[partition\] committed range 61-70\n\[checkpoint\] saved: last_committed=70\n/,
  );
  assert.match(
    copier.text,
    /\[copier\] stopped on SIGINT; run the same command again to resume\n$/,
  );
  assert.deepEqual(await ranges(target), ["1-20", "21-40", "41-60", "61-70"]);

  // The rest arrives; a follower with an end stops there, complete.
  await lake.publish(...range(71, 100));
  const rest = await runCli(["copy", "--follow", "--start", "1", "--end", "100"], { env: e });
  assert.equal(rest.code, 0, rest.stderr);
  assert.match(rest.stderr, /\[resume\] checkpoint found: last_committed=70\n/);
  // 70 is committed: the next ledger is 71.
  assert.match(rest.stderr, /\[follow\] following \S+ from ledger 71: /);
  assert.match(rest.stderr, /\[copier\] continuing from ledger 71\n/);
  assert.match(rest.stderr, /\[copier\] complete\n/);
  assert.deepEqual(await ranges(target), ["1-20", "21-40", "41-60", "61-70", "71-80", "81-100"]);
  // Again: everything to its end is held; there is nothing to follow and no ledger to name.
  const again = await runCli(["copy", "--follow", "--start", "1", "--end", "100"], { env: e });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(
    again.stderr,
    "[resume] checkpoint found: last_committed=100\n" +
      "[copier] range 1-100 is already complete (bronze.ledgers_lcm_raw (testnet/default/v1)); nothing to do\n",
  );
});

Deno.test("follow with --flush-interval: a partial cell is committed once its oldest ledger has waited, and later partials complete the cell on the grid", async () => {
  await using target = await catalogTarget("postgres");
  await using dir = await tempDir();
  await using out = await tempDir();
  const lake = await growingLake(dir.path);
  await lake.publish(...range(1, 25));
  const copier = new Copier(env(target, lake.url, out.path), [
    "--follow",
    "--start",
    "1",
    "--flush-interval",
    "300ms",
  ]);
  await copier.until(/\[partition\] committed range 21-25\n/);
  await lake.publish(...range(26, 43));
  await copier.until(/\[partition\] committed range 41-43\n/);
  copier.child.kill("SIGTERM");
  assert.equal((await copier.end()).code, 143, copier.text);
  const got = await ranges(target);
  assert.deepEqual(got.slice(0, 2), ["1-20", "21-25"]);
  // Contiguous, and on the grid: no range crosses a cell boundary.
  let next = 1;
  for (const r of got) {
    const [s, e] = r.split("-").map(Number);
    assert.equal(s, next, got.join(" "));
    assert.equal(Math.floor((s - 1) / SIZE), Math.floor((e - 1) / SIZE), `${r} crosses a cell`);
    next = e + 1;
  }
  assert.equal(next, 44);
});

Deno.test("follow waits for a ledger missing below the head, says so, and goes on once it lands; a changed .config.json stops it", async () => {
  await using target = await catalogTarget("postgres");
  await using dir = await tempDir();
  await using out = await tempDir();
  const lake = await growingLake(dir.path);
  await lake.publish(...range(1, 20), ...range(22, 30)); // 21 is late
  const copier = new Copier(env(target, lake.url, out.path), [
    "--follow",
    "--start",
    "1",
    "--flush-interval",
    "100ms",
  ]);
  await copier.until(
    /\[warn\] follow: ledger 21 is not in \S+ yet, though ledger 30 is; waiting for it\n/,
  );
  assert.deepEqual(await ranges(target), ["1-20"]);
  await lake.publish(21);
  await copier.until(/\[partition\] committed range 21-30\n/);
  const config = JSON.parse(await Deno.readTextFile(join(dir.path, ".config.json")));
  await Deno.writeTextFile(
    join(dir.path, ".config.json"),
    JSON.stringify({ ...config, version: "2.0" }),
  );
  assert.equal((await copier.end()).code, 1, copier.text);
  assert.match(
    copier.text,
    /bronze: \S+\/\.config\.json changed while bronze was reading the lake: version "1\.0" → "2\.0"\n$/,
  );
});

Deno.test("--end latest on a lake whose head is mid-cell copies to that head and says which ledger it is", async () => {
  await using target = await catalogTarget("postgres");
  await using dir = await tempDir();
  await using out = await tempDir();
  const lake = await growingLake(dir.path);
  await lake.publish(...range(1, 50));
  const r = await runCli(["copy", "--start", "1", "--end", "latest"], {
    env: env(target, lake.url, out.path),
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`^\\[copier\\] --end latest: the newest ledger of ${lake.url} is 50\\n`),
  );
  assert.deepEqual(await ranges(target), ["1-20", "21-40", "41-50"]);
});

Deno.test("metrics while following: the names are there, the committed ledger is the catalog's, /healthz is 200, then 503 once the lake stops growing past --stall-after", async () => {
  await using target = await catalogTarget("postgres");
  await using dir = await tempDir();
  await using out = await tempDir();
  const lake = await growingLake(dir.path);
  await lake.publish(...range(1, 45));
  const copier = new Copier(env(target, lake.url, out.path), [
    "--follow",
    "--start",
    "1",
    "--metrics-addr",
    "127.0.0.1:0",
    "--stall-after",
    "1s",
  ]);
  try {
    const [, url] = await copier.until(/\[metrics\] serving (http:\/\/\S+)\/metrics/);
    await copier.until(/\[follow\] caught up at ledger 45;/);
    const text = await (await fetch(`${url}/metrics`)).text();
    for (
      const name of [
        "bronze_last_committed_ledger",
        "bronze_source_head_ledger",
        "bronze_ledgers_committed_total",
        "bronze_partitions_committed_total",
        "bronze_bytes_written_total",
        "bronze_partition_commit_seconds_bucket",
        "bronze_errors_total",
      ]
    ) assert.match(text, new RegExp(`^${name}\\{`, "m"), name);
    const labels = 'network="testnet",era="default",version="v1"';
    assert.match(text, new RegExp(`^bronze_last_committed_ledger\\{${labels}\\} 40$`, "m"));
    assert.match(text, new RegExp(`^bronze_source_head_ledger\\{${labels}\\} 45$`, "m"));
    assert.match(text, new RegExp(`^bronze_partitions_committed_total\\{${labels}\\} 2$`, "m"));
    const rows = await lineageRows(target);
    assert.equal(rows.at(-1)!.ledger_end, 40); // the catalog's, as the gauge says
    const ok = await fetch(`${url}/healthz`);
    assert.equal(ok.status, 200, await ok.text());
    // The lake stops growing: within the stall bound the copier is still healthy, then it is not.
    let status = 200;
    let body = "";
    for (let i = 0; i < 100 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const h = await fetch(`${url}/healthz`);
      status = h.status;
      body = await h.text();
    }
    assert.equal(status, 503);
    assert.match(body, /^source head 45 has not advanced for \S+/);
  } finally {
    copier.child.kill("SIGTERM");
    await copier.end();
  }
});

Deno.test("a follower says it caught up once per arrival at the head, not at every poll; its summary gives the time it followed beside the time it copied", async () => {
  await using target = await catalogTarget("postgres");
  await using dir = await tempDir();
  await using out = await tempDir();
  const lake = await growingLake(dir.path);
  await lake.publish(...range(1, 30));
  const copier = new Copier(env(target, lake.url, out.path), [
    "--follow",
    "--start",
    "1",
    "--metrics-addr",
    "127.0.0.1:0",
  ]);
  try {
    const [, url] = await copier.until(/\[metrics\] serving (http:\/\/\S+)\/metrics/);
    await copier.until(/\[follow\] caught up at ledger 30;/);
    // The head moves on ledger by ledger inside the cell that waits: the follower sees each
    // (its gauge says so) and has nothing new to say.
    for (const n of range(31, 35)) {
      await lake.publish(n);
      await headSeen(url, n);
    }
    await lake.publish(...range(36, 40));
    await copier.until(/\[follow\] caught up at ledger 40;/);
  } finally {
    copier.child.kill("SIGINT");
  }
  assert.equal((await copier.end()).code, 130, copier.text);
  assert.deepEqual(copier.text.match(/\[follow\] caught up at ledger \d+/g), [
    "[follow] caught up at ledger 30",
    "[follow] caught up at ledger 40",
  ]);
  assert.match(
    copier.text,
    /\[copier\] copied 40 ledgers in 2 partitions while following for \S+: [\d.]+ MB written in [\d.]+s of copying \([\d.]+ MB of ledgers, [\d.]+ MB\/s\)\n/,
  );
});

/** Waits (bounded) until the follower's metrics say it has polled a head of `ledger`. */
async function headSeen(url: string, ledger: number): Promise<void> {
  const want = new RegExp(`^bronze_source_head_ledger\\{[^}]*\\} ${ledger}$`, "m");
  await until(
    async () => want.test(await (await fetch(`${url}/metrics`)).text()),
    `the follower polling a head of ${ledger}`,
    { everyMs: 50 },
  );
}
