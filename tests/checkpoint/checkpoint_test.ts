import { toObjectUrl } from "../../lib/blob/mod.ts";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type Checkpoint,
  checkpointManager,
  ErrNoCheckpoint,
} from "../../lib/checkpoint/checkpoint.ts";
import { copy, type CopyOptions } from "../../lib/copy/run.ts";
import { createLogger, type Logger, memoryLogger } from "../../lib/runtime/log.ts";
import { ClaimSession } from "../../lib/metadata/claims.ts";
import { checkpointShowCommand } from "../../lib/cli/commands/checkpoint.ts";
import { type CatalogTarget, catalogTarget, poolOf } from "../support/catalogs.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { copyOptions, lineageRows, withoutSummary } from "../support/copy.ts";
import { s3Env, startGcsEmulator, startS3rver, withEnv } from "../support/servers.ts";
import { startPreconditionServer } from "../support/precondition_server.ts";

const CP: Checkpoint = {
  copier_id: "bronze-copier-001",
  network: "pubnet",
  era_id: "pre_p23",
  version_label: "v1",
  last_committed_ledger: 59957913,
  last_committed_partition: { start: 59950000, end: 59959999, checksum: "sha256:abc123" },
  updated_at: "2025-01-15T10:30:00.000Z",
};

async function saveLoadRoundTrip(location: string) {
  const m = checkpointManager(location);
  await assert.rejects(
    () => m.load(),
    (err) => err instanceof ErrNoCheckpoint && err.location === location,
  );
  await m.save(CP);
  const fresh = checkpointManager(location);
  assert.deepEqual(await fresh.load(), CP);
  // The seed's field names, exactly.
  await fresh.save({ ...CP, last_committed_ledger: CP.last_committed_ledger + 1 });
  assert.equal(
    (await checkpointManager(location).load()).last_committed_ledger,
    CP.last_committed_ledger + 1,
  );
}

async function twoWritersCannotClobber(location: string) {
  const a = checkpointManager(location);
  const b = checkpointManager(location);
  await assert.rejects(() => a.load(), ErrNoCheckpoint);
  await assert.rejects(() => b.load(), ErrNoCheckpoint);
  await b.save(CP);
  await assert.rejects(() => a.save({ ...CP, copier_id: "other" }), (err: Error) => {
    assert.equal(
      err.message,
      `checkpoint ${location} was written by another process since this copier read it; is another copier using the same --checkpoint?`,
    );
    return true;
  });
  assert.equal((await checkpointManager(location).load()).copier_id, CP.copier_id);
}

Deno.test("TestCheckpoint_SaveLoad: a local checkpoint round-trips with the seed's field names, written atomically (no temp file left), and a second writer cannot clobber it", async () => {
  await using dir = await tempDir();
  const location = join(dir.path, "state", "checkpoint.json");
  await saveLoadRoundTrip(location);
  const raw = JSON.parse(await readFile(location, "utf8"));
  assert.deepEqual(Object.keys(raw).sort(), [
    "copier_id",
    "era_id",
    "last_committed_ledger",
    "last_committed_partition",
    "network",
    "updated_at",
    "version_label",
  ]);
  assert.deepEqual([...Deno.readDirSync(join(dir.path, "state"))].map((e) => e.name), [
    "checkpoint.json",
  ], "no temp files left");
  await twoWritersCannotClobber(join(dir.path, "other.json"));
});

Deno.test("TestCheckpoint_SaveLoad: an s3:// checkpoint (on s3rver) round-trips, absent until saved", async () => {
  const s3 = await startS3rver(["bronze-state"]);
  try {
    await withEnv(
      s3Env(s3.endpoint),
      () => saveLoadRoundTrip("s3://bronze-state/bronze/state/checkpoint.json"),
    );
  } finally {
    await s3.stop();
  }
});

Deno.test("TestCheckpoint_SaveLoad: a gs:// checkpoint (on the GCS emulator) round-trips, absent until saved", async () => {
  const gcs = await startGcsEmulator();
  try {
    await withEnv(
      { STORAGE_EMULATOR_HOST: gcs.host },
      () => saveLoadRoundTrip("gs://bronze-state/bronze/state/checkpoint.json"),
    );
  } finally {
    await gcs.stop();
  }
});

// Neither emulator enforces If-None-Match / If-Match / ifGenerationMatch, so the two-writer
// precondition logic of s3:// and gs:// checkpoints is tested against our own server, which does.
Deno.test("checkpoint preconditions on s3:// and gs:// (against tests/support/precondition_server.ts)", async () => {
  const server = await startPreconditionServer();
  try {
    await withEnv(s3Env(server.endpoint), async () => {
      await saveLoadRoundTrip("s3://bronze-state/a/checkpoint.json");
      await twoWritersCannotClobber("s3://bronze-state/b/checkpoint.json");
    });
    await withEnv({ STORAGE_EMULATOR_HOST: server.endpoint }, async () => {
      await saveLoadRoundTrip("gs://bronze-state/a/checkpoint.json");
      await twoWritersCannotClobber("gs://bronze-state/b/checkpoint.json");
    });
  } finally {
    await server.stop();
  }
});

Deno.test("a corrupt or malformed checkpoint is an error naming the file, never a fresh start", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "checkpoint.json");
  await writeFile(path, '{"copier_id": "x", "last_committed');
  await assert.rejects(() => checkpointManager(path).load(), (err: Error) => {
    assert.match(err.message, new RegExp(`^checkpoint ${path} is corrupt: not valid JSON \\(`));
    return true;
  });
  await writeFile(path, JSON.stringify({ ...CP, last_committed_ledger: -5, extra: 1 }));
  await assert.rejects(() => checkpointManager(path).load(), (err: Error) => {
    assert.equal(
      err.message,
      `checkpoint ${path} is corrupt: last_committed_ledger must be a ledger number; unknown field extra`,
    );
    return true;
  });
  assert.throws(
    () => checkpointManager("ftp://host/cp.json"),
    (err: Error) => {
      assert.equal(
        err.message,
        'checkpoint location must be a local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix], got "ftp://host/cp.json"',
      );
      return true;
    },
  );
});

// ---- resume ----

/** The resume tests' copier, over ledgers 1-500 unless told otherwise. */
const options = (
  target: CatalogTarget,
  source: string,
  storage: string,
  o: Partial<CopyOptions> = {},
): CopyOptions =>
  copyOptions(target, { source, storage, copierId: "bronze-copier-001", start: 1, end: 500, ...o });

const lake500 = () =>
  syntheticLake({ network: "testnet", start: 1, count: 500, lcmVersion: 2, ledgerBytes: 2048 });

/** "start-end checksum" of each lineage row. */
const lineage = async (target: CatalogTarget): Promise<string[]> =>
  (await lineageRows(target)).map((r) => `${r.ledger_start}-${r.ledger_end} ${r.checksum}`);

Deno.test("TestCheckpoint_NoCheckpoint: without a checkpoint the copier starts from the configured start", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const log = memoryLogger();
  await copy(options(target, await lake500(), out.path, { start: 1, end: 200 }), log);
  assert.deepEqual(withoutSummary(log.lines, { ledgers: 200, partitions: 2 }), [
    "[copier] starting from ledger 1",
    "[partition] committed range 1-100",
    "[checkpoint] saved: last_committed=100",
    "[partition] committed range 101-200",
    "[checkpoint] saved: last_committed=200",
    "[copier] complete",
  ]);
});

Deno.test("TestCheckpoint_Resume: the copier resumes after the checkpoint and copies only the rest", async () => {
  await using target = await catalogTarget("embedded");
  await using out = await tempDir();
  const source = await lake500();
  await copy(options(target, source, out.path, { end: 300 }), memoryLogger());
  const log = memoryLogger();
  const r = await copy(options(target, source, out.path, { end: 500 }), log);
  assert.deepEqual(r.committed, [{ start: 301, end: 400 }, { start: 401, end: 500 }]);
  assert.deepEqual(log.lines.slice(0, 2), [
    "[resume] checkpoint found: last_committed=300",
    "[copier] continuing from ledger 301",
  ]);
  assert.equal(withoutSummary(log.lines).at(-1), "[copier] complete");
  const cp = await checkpointManager(join(target.stateDir, "checkpoint.json")).load();
  assert.equal(cp.last_committed_ledger, 500);
  assert.deepEqual(cp.last_committed_partition?.start, 401);
  // Already complete: says so and does nothing.
  const again = memoryLogger();
  assert.deepEqual((await copy(options(target, source, out.path), again)).committed, []);
  assert.equal(
    again.lines.at(-1),
    "[copier] range 1-500 is already complete (bronze.ledgers_lcm_raw (testnet/pre_p23/v1)); nothing to do",
  );
});

Deno.test("catalog fallback: with the checkpoint gone, the run resumes from the catalog's contiguous coverage", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await lake500();
  await copy(options(target, source, out.path, { end: 300 }), memoryLogger());
  await rm(join(target.stateDir, "checkpoint.json"));
  const log = memoryLogger();
  await copy(options(target, source, out.path), log);
  assert.deepEqual(log.lines.slice(0, 2), [
    "[resume] catalog holds 1-300",
    "[copier] continuing from ledger 301",
  ]);
});

Deno.test("a checkpoint that lags the catalog (crash between catalog commit and save) resumes from the catalog", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await lake500();
  await copy(options(target, source, out.path, { end: 300 }), memoryLogger());
  const path = join(target.stateDir, "checkpoint.json");
  const cp = JSON.parse(await readFile(path, "utf8"));
  await writeFile(path, JSON.stringify({ ...cp, last_committed_ledger: 100 }));
  const log = memoryLogger();
  const r = await copy(options(target, source, out.path), log);
  assert.deepEqual(log.lines.slice(0, 3), [
    "[resume] checkpoint found: last_committed=100",
    "[resume] catalog holds 1-300 (ahead of the checkpoint)",
    "[copier] continuing from ledger 301",
  ]);
  assert.deepEqual(r.committed.map((x) => x.start), [301, 401]);
});

Deno.test("a checkpoint ahead of the catalog is warned about and the catalog is trusted; one of an earlier range is not", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await lake500();
  await copy(options(target, source, out.path, { start: 101, end: 300 }), memoryLogger());
  const path = join(target.stateDir, "checkpoint.json");
  const cp = JSON.parse(await readFile(path, "utf8"));

  // Its own earlier run started at 101: a run from 1 sees ledger 300 held, so no contradiction.
  const earlier = memoryLogger();
  await copy(options(target, source, out.path, { start: 1, end: 100 }), earlier);
  assert.ok(!earlier.lines.some((l) => l.startsWith("[warn]")), earlier.lines.join("\n"));

  await writeFile(path, JSON.stringify({ ...cp, last_committed_ledger: 450 }));
  const log = memoryLogger();
  const r = await copy(options(target, source, out.path), log);
  assert.deepEqual(log.lines.slice(0, 4), [
    "[resume] checkpoint found: last_committed=450",
    "[warn] resume: checkpoint says ledger 450 is committed, but the catalog holds no lineage at it; trusting the catalog",
    "[resume] catalog holds 1-300",
    "[copier] continuing from ledger 301",
  ]);
  assert.deepEqual(r.committed.map((x) => x.start), [301, 401]);
});

Deno.test("a checkpoint of another copier or dataset is refused, showing both sides", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await lake500();
  await copy(options(target, source, out.path, { end: 100 }), memoryLogger());
  const path = join(target.stateDir, "checkpoint.json");
  await assert.rejects(
    () => copy(options(target, source, out.path, { era: "p23", copierId: "vm-2" }), memoryLogger()),
    (err: Error) => {
      assert.equal(
        err.message,
        `checkpoint ${path} belongs to another copier or dataset: copier_id "bronze-copier-001" (this run: "vm-2"), era_id "pre_p23" (this run: "p23"); use its settings, or another --checkpoint`,
      );
      return true;
    },
  );
});

Deno.test("a failed checkpoint save logs a loud [warn] and does not fail the partition", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const path = join(target.stateDir, "checkpoint.json");
  const lines: string[] = [];
  // Another writer replaces the checkpoint right after the first save: the copier's next save is
  // refused by the store's precondition, a real failure of a real store.
  const log: Logger = createLogger("text", (line) => {
    lines.push(line);
    if (line === "[checkpoint] saved: last_committed=100") {
      Deno.writeTextFileSync(`${path}.other`, JSON.stringify(CP));
      Deno.renameSync(`${path}.other`, path);
    }
  }, false);
  const r = await copy(
    options(target, await lake500(), out.path, { end: 200, concurrency: 1 }),
    log,
  );
  assert.deepEqual(r.committed.map((x) => x.end), [100, 200]);
  assert.equal(
    lines.find((l) => l.startsWith("[warn]")),
    `[warn] checkpoint: save to ${path} failed (the partition is committed; the catalog is the truth): checkpoint ${path} was written by another process since this copier read it; is another copier using the same --checkpoint?`,
  );
  assert.equal((await lineage(target)).length, 2);
});

Deno.test("storage holding partitions the catalog lacks: adopted after checking sha256, said so, nothing rewritten", async () => {
  await using first = await catalogTarget("postgres");
  await using second = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await lake500();
  await copy(options(first, source, out.path, { end: 300 }), memoryLogger());
  const stat = Deno.statSync(
    join(out.path, "testnet/pre_p23/v1/ledgers_lcm_raw/range=101-200/part-101-200.parquet"),
  );
  const log = memoryLogger();
  const r = await copy(options(second, source, out.path, { end: 300 }), log);
  assert.deepEqual(r.adopted.map((x) => x.start), [1, 101, 201]);
  assert.ok(
    log.lines.includes(
      `[storage] adopted ${out.path}/testnet/pre_p23/v1/ledgers_lcm_raw/range=101-200/part-101-200.parquet: already stored with the same sha256`,
    ),
  );
  assert.deepEqual(await lineage(second), await lineage(first));
  const after = Deno.statSync(
    join(out.path, "testnet/pre_p23/v1/ledgers_lcm_raw/range=101-200/part-101-200.parquet"),
  );
  assert.equal(after.ino, stat.ino, "the stored file was not replaced");
});

Deno.test("an interrupt mid-run commits what is in hand, in order and without a gap; the next run completes the rest", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await lake500();
  const controller = new AbortController();
  const lines: string[] = [];
  // Interrupted as the first partition commits, while the next two are being built by the
  // workers: whatever they hold is committed in order, a partial one last. (Exactly where the
  // interrupt lands depends on the workers' pace; the CLI tests pin the partial case down.)
  const log = createLogger("text", (line) => {
    lines.push(line);
    if (line === "[partition] committed range 101-200") controller.abort();
  }, false);
  const opts = { partitionSize: 200, concurrency: 2, start: 101, end: 500 };
  const r = await copy(options(target, source, out.path, opts), log, controller.signal);
  assert.deepEqual(r.committed[0], { start: 101, end: 200 });
  for (let i = 1; i < r.committed.length; i++) {
    assert.equal(r.committed[i].start, r.committed[i - 1].end + 1, lines.join("\n"));
    if (i < r.committed.length - 1) {
      assert.equal(r.committed[i].end % 200, 0, "only the last may be partial");
    }
  }
  const held = r.committed.at(-1)!;
  assert.equal(r.interrupted, held.end < 500);
  assert.equal(lines.includes("[copier] complete"), held.end === 500);

  const resumed = memoryLogger();
  const r2 = await copy(options(target, source, out.path, opts), resumed);
  if (held.end === 500) {
    assert.deepEqual(r2.committed, []);
    return;
  }
  assert.deepEqual(resumed.lines.slice(0, 2), [
    `[resume] checkpoint found: last_committed=${held.end}`,
    `[copier] continuing from ledger ${held.end + 1}`,
  ]);
  assert.equal(withoutSummary(resumed.lines).at(-1), "[copier] complete");
  // The rest of the interrupted cell first, then the grid as usual.
  const expected = [];
  for (let s = held.end + 1; s <= 500;) {
    const e = Math.min(Math.ceil(s / 200) * 200, 500);
    expected.push({ start: s, end: e });
    s = e + 1;
  }
  assert.deepEqual(r2.committed, expected);
});

// ---- concurrent copiers ----

Deno.test("two copiers on overlapping ranges: the second is refused at start, naming the first", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await lake500();
  const c = await target.open();
  try {
    await copy(
      options(target, source, out.path, {
        end: 100,
        copierId: "vm-1",
        checkpoint: toObjectUrl(join(out.path, "vm-1.json")),
      }),
      memoryLogger(),
    );
    const { rows } = await poolOf(c).query("SELECT id FROM _meta_datasets");
    const holder = await ClaimSession.open(c, { id: rows[0].id, label: "x" }, "vm-1");
    await holder.claimRange(1, 300);
    try {
      await assert.rejects(
        () =>
          copy(
            options(target, source, out.path, {
              start: 201,
              end: 500,
              copierId: "vm-2",
              checkpoint: toObjectUrl(join(out.path, "vm-2.json")),
            }),
            memoryLogger(),
          ),
        (err: Error) => {
          assert.match(
            err.message,
            /^range 201-500 of bronze\.ledgers_lcm_raw \(testnet\/pre_p23\/v1\) overlaps 1-300, being copied by copier vm-1 \(host .+, pid \d+, since .+\); give each copier a disjoint range$/,
          );
          return true;
        },
      );
    } finally {
      await holder.close();
    }
    // Released: the same range is free again.
    await copy(
      options(target, source, out.path, {
        start: 201,
        end: 500,
        copierId: "vm-2",
        checkpoint: toObjectUrl(join(out.path, "vm-2.json")),
      }),
      memoryLogger(),
    );
  } finally {
    await c.close();
  }
});

Deno.test("a crashed copier's claim never blocks: its connection dies, the next claimer sweeps it", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await lake500();
  await copy(options(target, source, out.path, { end: 100 }), memoryLogger());
  const c = await target.open();
  try {
    const { rows } = await poolOf(c).query("SELECT id FROM _meta_datasets");
    const staleSession = await ClaimSession.open(c, { id: rows[0].id, label: "x" }, "vm-dead");
    const stale = await staleSession.claimRange(1, 500);
    // Kill the claiming session the way a crash would (the claim row stays behind).
    await poolOf(c).query(
      "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = $1 AND objsubid = 2",
      [stale.id],
    );
    assert.equal(
      (await poolOf(c).query("SELECT count(*)::int AS n FROM _meta_copier_claims")).rows[0].n,
      1,
    );
    const r = await copy(options(target, source, out.path, { end: 500 }), memoryLogger());
    assert.deepEqual(r.committed.map((x) => x.end), [200, 300, 400, 500]);
    assert.equal(
      (await poolOf(c).query("SELECT count(*)::int AS n FROM _meta_copier_claims")).rows[0].n,
      0,
    );
    await staleSession.close();
  } finally {
    await c.close();
  }
});

Deno.test("two copiers on disjoint ranges of one dataset run at once, each with its own checkpoint; the catalog is contiguous", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const source = await lake500();
  const [a, b] = await Promise.all([
    copy(
      options(target, source, out.path, {
        start: 1,
        end: 250,
        copierId: "vm-1",
        checkpoint: toObjectUrl(join(out.path, "vm-1.json")),
      }),
      memoryLogger(),
    ),
    copy(
      options(target, source, out.path, {
        start: 251,
        end: 500,
        copierId: "vm-2",
        checkpoint: toObjectUrl(join(out.path, "vm-2.json")),
      }),
      memoryLogger(),
    ),
  ]);
  assert.deepEqual(a.committed, [{ start: 1, end: 100 }, { start: 101, end: 200 }, {
    start: 201,
    end: 250,
  }]);
  assert.deepEqual(b.committed, [{ start: 251, end: 300 }, { start: 301, end: 400 }, {
    start: 401,
    end: 500,
  }]);
  assert.equal(
    (await checkpointManager(join(out.path, "vm-1.json")).load()).last_committed_ledger,
    250,
  );
  assert.equal(
    (await checkpointManager(join(out.path, "vm-2.json")).load()).last_committed_ledger,
    500,
  );
  const ranges = (await lineage(target)).map((l) => l.split(" ")[0]);
  assert.deepEqual(ranges, ["1-100", "101-200", "201-250", "251-300", "301-400", "401-500"]);
});

// ---- bronze checkpoint show ----

Deno.test("checkpoint show: the checkpoint beside the catalog's view (agrees, lags), --json, and no checkpoint", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await copy(options(target, await lake500(), out.path, { end: 300 }), memoryLogger());
  const path = join(target.stateDir, "checkpoint.json");
  const args = {
    checkpoint: toObjectUrl(path),
    stateDir: target.stateDir,
    catalog: target.dsn,
    json: false,
  };
  const show = async (a = args) => {
    const lines: string[] = [];
    await checkpointShowCommand(a, (l) => lines.push(l));
    return lines;
  };
  const cp = JSON.parse(await readFile(path, "utf8")) as Checkpoint;
  assert.deepEqual(await show(), [
    `checkpoint             ${path}`,
    "copier                 bronze-copier-001 (dataset ledgers_lcm_raw testnet/pre_p23/v1)",
    "last committed ledger  300",
    `last partition         201-300  ${cp.last_committed_partition!.checksum}`,
    `saved at               ${cp.updated_at}`,
    "catalog                holds 1-300 contiguously: agrees",
  ]);
  assert.deepEqual(JSON.parse((await show({ ...args, json: true })).join("\n")), cp);

  await writeFile(
    path,
    JSON.stringify({
      ...cp,
      last_committed_ledger: 200,
      last_committed_partition: { start: 101, end: 200, checksum: "sha256:bogus" },
    }),
  );
  assert.equal(
    (await show()).at(-1),
    "catalog                holds 1-300 contiguously: 100 ledgers beyond the checkpoint (the checkpoint lags; the catalog is the truth); partition 101-200 is recorded with " +
      `${(await lineage(target))[1].split(" ")[1]}, not sha256:bogus`,
  );

  await writeFile(path, JSON.stringify({ ...cp, last_committed_ledger: 450 }));
  assert.equal(
    (await show()).at(-1),
    "catalog                holds no lineage at ledger 450: the checkpoint is ahead of the catalog",
  );

  const missing = join(out.path, "none.json");
  assert.deepEqual(await show({ ...args, checkpoint: toObjectUrl(missing) }), [
    `no checkpoint at ${missing}: a copy with it starts at its --start, skipping what the catalog already holds`,
  ]);
  assert.deepEqual(await show({ ...args, checkpoint: toObjectUrl(missing), json: true }), ["null"]);
});
