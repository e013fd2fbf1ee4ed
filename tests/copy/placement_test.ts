/**
 * A dataset's storage root and grid are the dataset's (lib/copy/placement.ts): recorded when it is
 * registered, taken from there by the commands that act on its partitions, and a flag that
 * disagrees is refused, naming both (issue 21).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DEFAULT_PARTITION_SIZE,
  DEFAULT_STORAGE,
  PlacementError,
  placementOf,
} from "../../lib/copy/placement.ts";
import { toStoreUrl } from "../../lib/blob/mod.ts";
import { catalogTarget, poolOf } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv } from "../support/copy.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";

const LABEL = "bronze.ledgers_lcm_raw (testnet/default/v1)";
const KEEPS = "(a dataset keeps the storage and grid it was registered with: drop the flag, or " +
  "give the dataset's)";

Deno.test("placementOf: a new dataset takes the flags or the defaults; a registered one its own, the same flags, or a refusal naming both", () => {
  const url = (u: string) => toStoreUrl(u);
  assert.deepEqual(placementOf(null, {}), {
    storage: url(DEFAULT_STORAGE),
    partitionSize: DEFAULT_PARTITION_SIZE,
  });
  assert.deepEqual(placementOf(null, { storage: url("gs://b/x"), partitionSize: 100 }), {
    storage: url("gs://b/x"),
    partitionSize: 100,
  });
  const ds = { label: "ds", storageRoot: "gs://b/x", partitionSize: 100 };
  assert.deepEqual(placementOf(ds, {}), { storage: url("gs://b/x"), partitionSize: 100 });
  // The same root however it is spelled.
  assert.deepEqual(placementOf(ds, { storage: url("gs://b/x/") }).storage, url("gs://b/x/"));
  assert.throws(
    () => placementOf(ds, { storage: url("gs://b/y"), partitionSize: 50 }),
    (err: PlacementError) => {
      assert.equal(
        err.message,
        `ds: its storage is gs://b/x, not gs://b/y; its partition size is 100, not 50 ${KEEPS}`,
      );
      assert.equal(err.exitCode, 2);
      return true;
    },
  );
  // A dataset registered before roots were recorded, whose lineage named no one root.
  const legacy = { label: "old", storageRoot: null, partitionSize: null };
  assert.throws(() => placementOf(legacy, {}), /old: its storage root is not recorded/);
  assert.throws(
    () => placementOf(legacy, { storage: url("./data") }),
    /old: its partition size is not recorded .*give --partition-size/,
  );
  assert.deepEqual(placementOf(legacy, { storage: url("./data"), partitionSize: 7 }), {
    storage: url("./data"),
    partitionSize: 7,
  });
});

Deno.test("copy, compact, gc and catalog rebuild take the dataset's storage and grid when no flag is given, and refuse one that disagrees (exit 2, one line naming both)", async () => {
  const source = await syntheticLake({
    network: "testnet",
    start: 1,
    count: 300,
    lcmVersion: 2,
    ledgerBytes: 512,
  });
  await using target = await catalogTarget("postgres");
  await using work = await tempDir();
  const bucket = join(work.path, "bucket");
  const { STORAGE_URL: _, ...env } = copyEnv(target, source, bucket);
  // A follower's grid and storage: recorded with the dataset.
  const first = await runCli(
    ["copy", "--start", "1", "--end", "150", "--partition-size", "100", "--storage", bucket],
    { env },
  );
  assert.equal(first.code, 0, first.stderr);
  const c = await target.open();
  try {
    const { rows } = await poolOf(c).query(
      `SELECT storage_root, partition_size FROM _meta_datasets`,
    );
    assert.deepEqual(rows, [{ storage_root: bucket, partition_size: 100 }]);
  } finally {
    await c.close();
  }

  // Without flags: the dataset's own (the next cell, 151-200, lands in ./bucket on its grid).
  const more = await runCli(["copy", "--start", "151", "--end", "170"], { env });
  assert.equal(more.code, 0, more.stderr);
  assert.match(more.stderr, /\[partition\] committed range 151-170\n/);
  const rest = await runCli(["copy", "--start", "171", "--end", "200"], { env });
  assert.equal(rest.code, 0, rest.stderr);

  for (
    const [args, problem] of [
      [["copy", "--start", "201", "--end", "250", "--storage", "./data"], "its storage is"],
      [
        ["copy", "--start", "201", "--end", "250", "--partition-size", "10000"],
        "its partition size is",
      ],
      [["compact", "--partition-size", "10000"], "its partition size is"],
      [["compact", "--storage", "./data"], "its storage is"],
      [["gc", "--storage", "./data"], "its storage is"],
    ] as const
  ) {
    const r = await runCli([...args], { env, cwd: work.path });
    assert.equal(r.code, 2, `${args.join(" ")}\n${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.ok(r.stderr.startsWith(`bronze: ${LABEL}: ${problem}`), r.stderr);
    assert.ok(r.stderr.includes(KEEPS), r.stderr);
  }

  // compact with no flag: cell 101-200 is covered by three partials on the dataset's grid.
  const compacted = await runCli(["compact", "--json"], { env, cwd: work.path });
  assert.equal(compacted.code, 0, compacted.stderr);
  const cells = JSON.parse(compacted.stdout).cells.map((x: { cell: { start: number } }) =>
    x.cell.start
  );
  assert.deepEqual(cells, [101]);
  const gc = await runCli(["gc", "--json"], { env, cwd: work.path });
  assert.equal(gc.code, 0, gc.stderr);
  assert.equal(JSON.parse(gc.stdout).storage, bucket);
  const rebuilt = await runCli(["catalog", "rebuild", "--json"], { env, cwd: work.path });
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  const report = JSON.parse(rebuilt.stdout);
  assert.deepEqual([report.storage, report.present, report.recorded], [bucket, 2, 0]);
});
