/**
 * The storage root is a boundary: gc, catalog rebuild, verify and repair never follow a symbolic
 * link out of it. Links inside the dataset's folder point outside at a folder that looks like a
 * partition, a file named like a partition, a temp file old enough for gc, and (for verify and
 * repair) a committed partition's own folder moved out and linked back. Each command names what
 * it left alone, and the outside is the same, byte for byte, after all of them.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { catalogTarget } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv, lineageRows } from "../support/copy.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";

const LAKE = { network: "testnet", start: 1, count: 300, lcmVersion: 2, seed: 4 } as const;
const PREFIX = "testnet/default/v1/ledgers_lcm_raw";

/** Every file under `dir` with its sha256 (links not followed), and every link with its target. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(d)) {
      const p = join(d, e.name);
      if (e.isSymlink) out[p] = `-> ${Deno.readLinkSync(p)}`;
      else if (e.isDirectory) walk(p);
      else out[p] = createHash("sha256").update(Deno.readFileSync(p)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

Deno.test("symbolic links out of the storage root: gc, rebuild, verify and repair leave the outside alone and say so", async () => {
  await using target = await catalogTarget("postgres");
  await using storage = await tempDir("bronze-boundary-storage-");
  await using outside = await tempDir("bronze-boundary-outside-");
  const lake = await syntheticLake(LAKE);
  const env = { ...copyEnv(target, lake, storage.path), PARTITION_SIZE: "100" };
  const copied = await runCli(["copy", "--start", "1", "--end", "300"], { env });
  assert.equal(copied.code, 0, copied.stderr);
  const dataset = join(storage.path, PREFIX);
  const old = new Date(Date.now() - 7 * 86_400_000); // past any grace period

  // Outside: things gc would take for garbage, were they inside.
  const o = outside.path;
  await Deno.mkdir(join(o, "range=401-500"));
  await Deno.copyFile(
    join(dataset, "range=201-300/part-201-300.parquet"),
    join(o, "range=401-500/part-401-500.parquet"),
  );
  await Deno.writeTextFile(join(o, "victim.parquet"), "not gc's to delete");
  await Deno.writeTextFile(join(o, "temp-victim"), "a temp file's bytes");
  for (const f of ["range=401-500/part-401-500.parquet", "victim.parquet", "temp-victim"]) {
    await Deno.utime(join(o, f), old, old);
  }
  // Inside: links out of the root, a folder and two files.
  await Deno.symlink(join(o, "range=401-500"), join(dataset, "range=401-500"));
  await Deno.mkdir(join(dataset, "range=501-600"));
  await Deno.symlink(
    join(o, "victim.parquet"),
    join(dataset, "range=501-600/part-501-600.parquet"),
  );
  await Deno.symlink(
    join(o, "temp-victim"),
    join(dataset, "range=1-100/.part-1-100.parquet.tmp-0123456789abcdef"),
  );
  // A committed partition moved out and linked back: verify and repair must not read it there.
  await Deno.mkdir(join(o, "moved"));
  await Deno.rename(join(dataset, "range=101-200"), join(o, "moved/range=101-200"));
  await Deno.symlink(join(o, "moved/range=101-200"), join(dataset, "range=101-200"));
  const before = snapshot(o);
  const links = snapshot(dataset);

  // gc: nothing behind a link is listed, so nothing there is deleted; each link is named.
  const gc = await runCli(["gc", "--older-than", "0s", "--apply"], { env });
  assert.equal(gc.code, 0, gc.stderr + gc.stdout);
  for (const link of ["range=401-500", "range=501-600/part-501-600.parquet", "range=101-200"]) {
    assert.match(
      gc.stdout,
      new RegExp(`${RegExp.escape(join(dataset, link))}: a symbolic link out of the storage root`),
      gc.stdout,
    );
  }
  assert.doesNotMatch(gc.stderr, /\[gc\] deleted/, gc.stderr);
  assert.deepEqual(snapshot(o), before);

  // verify: the partition behind a link fails as "outside", unread; the others pass.
  const verify = await runCli(["verify", "--json"], { env });
  assert.equal(verify.code, 4, verify.stderr);
  const report = JSON.parse(verify.stdout);
  assert.equal(report.passed, 2);
  assert.deepEqual(
    report.failures.map((f: { partition: { start: number }; check: string }) => [
      f.partition.start,
      f.check,
    ]),
    [[101, "outside"]],
  );
  assert.match(report.failures[0].message, /leads out of the storage root .* left alone/);

  // repair: not read, not rebuilt into the outside.
  const repair = await runCli(["repair", "--source", lake], { env });
  assert.equal(repair.code, 4, repair.stderr + repair.stdout);
  assert.match(repair.stdout, /^NOT REPAIRED \[outside\] partition 101-200: /m);
  assert.deepEqual(snapshot(o), before);

  // rebuild into an empty catalog: only the partitions inside; the links named on stderr.
  await using fresh = await catalogTarget("postgres");
  const rebuilt = await runCli(["catalog", "rebuild", "--storage", storage.path], {
    env: { ...env, CATALOG_DSN: fresh.dsn! },
  });
  assert.equal(rebuilt.code, 0, rebuilt.stderr + rebuilt.stdout);
  assert.deepEqual(
    (await lineageRows(fresh)).map((r) => `${r.ledger_start}-${r.ledger_end}`),
    ["1-100", "201-300"],
  );
  assert.match(rebuilt.stderr, /range=401-500: a symbolic link out of the storage root/);
  assert.deepEqual(snapshot(o), before);
  assert.deepEqual(snapshot(dataset), links, "the links themselves are left alone too");
});
