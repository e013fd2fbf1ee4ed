/**
 * `deno task bench`: bronze copy against the physical limit.
 *
 * For each profile (ledgers of about 2 KB, 200 KB and 1 MB) a synthetic lake is made once and
 * cached under `.bench/lakes/`. On that lake, in one run:
 *
 *   baseline   the work no copier can avoid: read every object, zstd-decompress it, sha256 every
 *              LedgerCloseMeta and zstd-compress the same bytes at the Parquet writer's level
 *              (ZSTD_LEVEL), single-threaded, in the same runtime, with the same zstd engines;
 *   copy       `copy()` end to end with the embedded catalog and with PostgreSQL (a scratch
 *              database on 127.0.0.1:5432, created and dropped), at --concurrency 1, the default
 *              and 4; a fleet of two copiers;
 *   memory     one 1 MB-ledger partition far larger than the row-group budget (peak RSS must not
 *              grow with the partition);
 *   faults     a copy whose lake and storage are on s3rver, then on the GCS emulator, behind the
 *              tests' fault-injecting proxy (tests/support/fault_proxy.ts), with 1% of requests
 *              faulted (5xx, throttling, cut bodies, lost write answers, stalls) against the same
 *              copy with none: the price of riding them out, as a ratio.
 *
 * Every measurement runs in a fresh subprocess (this script with --child), which reports its own
 * peak RSS (VmHWM) before it exits. Throughput and CPU per GB are over the copy loop
 * (CopyStats.seconds and .cpuSeconds: first build to last commit); the CPU outside it (runtime,
 * catalog and worker start-up) and the end-to-end wall time are reported beside them. Writes
 * `.bench/report.json` and prints a table, then each target of issue 14 beside its measured value.
 *
 *   deno task bench [--quick] [--scale 0.5] [--profiles 2k,200k,1m] [--no-postgres]
 *                   [--concurrency 1,2,4] [--repeat 2] [--no-memory] [--no-fleet] [--no-faults]
 *                   [--coldstart | --no-coldstart] [--out .bench/report.json]
 *
 * Then issue 23's rows (scripts/bench-coldstart.ts): the embedded catalog's first use and opening,
 * the demo on a fresh clone, the embedded/PostgreSQL ratio of one copy, two long runs' peak RSS;
 * `--coldstart` runs those alone.
 *
 * Each number is the best of --repeat runs (other load on the machine only slows a run down), taken
 * in rounds that measure every run once, so that a machine whose speed drifts during the bench
 * moves the baseline with the copies.
 */
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { cp } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeLake } from "./make-lake.ts";
import type { ObjectStore } from "../lib/blob/store.ts";
import type { BucketUrl } from "../lib/blob/url.ts";
import { objectKey } from "../lib/source/lake_layout.ts";
import { ZSTD_LEVEL } from "../lib/table/schema.ts";
import { ZstdCompressor, ZstdDecompressor } from "../lib/runtime/zstd.ts";
import { SPECS } from "../lib/settings/mod.ts";
import { PG_ADMIN, withScratchDb } from "./_scratch_db.ts";
import { V8_FLAGS } from "./compile.ts";
import type { CopyChildArgs, Measure, Profile } from "./_bench_types.ts";

export const V8_ARGS = [`--v8-flags=${V8_FLAGS.join(",")}`];

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const BENCH = join(ROOT, ".bench");
/** hyparquet-writer's default page size, which bronze's writer keeps. */
const PAGE = 1 << 20;
/** `bronze copy`'s default --concurrency: the targets are measured there. */
const DEFAULT_C = SPECS.concurrency.default!({}) as number;

// 2 KB ledgers: ten partitions, not two. A 10,000-ledger partition of them is about half a second
// of work, so with two a fresh worker spends much of its run warming up its JIT (measured: 0.42 of
// the baseline at c=1 over 2 partitions, 0.64 over 10), which a real early-history backfill of
// thousands of partitions does once. The lake is prefix-stable: its first two partitions are
// byte-identical to those of the earlier 20,000-ledger profile.
const PROFILES: Profile[] = [
  { name: "2k", ledgerBytes: 2048, count: 100_000, partitionSize: 10_000, memoryLedgers: 0 },
  { name: "200k", ledgerBytes: 200_000, count: 2_500, partitionSize: 250, memoryLedgers: 0 },
  { name: "1m", ledgerBytes: 1_000_000, count: 600, partitionSize: 150, memoryLedgers: 300 },
];

/** User + system CPU seconds of this process so far, all threads (workers included). */
function cpuSeconds(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ)
}

function peakRssMb(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

// ---- children -------------------------------------------------------------------------------

/** The unavoidable work, single-threaded: read, decompress, sha256, compress. */
async function baselineChild(lake: string, start: number, count: number): Promise<Measure> {
  const config = JSON.parse(await Deno.readTextFile(join(lake, ".config.json")));
  if (config.ledgersPerBatch !== 1) throw new Error("bench lakes hold one ledger per object");
  // The cheapest reads and zstd this runtime offers, as the copier's build workers use them
  // (synchronous reads; lib/zstd.ts: one engine, reused).
  const compressor = new ZstdCompressor(ZSTD_LEVEL);
  const decompressor = new ZstdDecompressor();
  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  let bytes = 0;
  let sink = 0;
  // The Parquet writer compresses xdr_bytes in pages of about PAGE bytes: so does the baseline.
  let page: Uint8Array[] = [];
  let pageBytes = 0;
  const compressPage = () => {
    const all = new Uint8Array(pageBytes);
    let off = 0;
    for (const p of page) {
      all.set(p, off);
      off += p.length;
    }
    sink ^= compressor.compress(all).length;
    page = [];
    pageBytes = 0;
  };
  for (let seq = start; seq < start + count; seq++) {
    const data = decompressor.decompress(
      Deno.readFileSync(join(lake, objectKey(config, seq, "zst"))),
    );
    const lcm = data.subarray(12); // LedgerCloseMetaBatch: start, end, count, then the one LCM
    sink ^= createHash("sha256").update(lcm).digest()[0];
    page.push(lcm);
    pageBytes += lcm.length;
    if (pageBytes >= PAGE) compressPage();
    bytes += lcm.length;
  }
  if (pageBytes) compressPage();
  const seconds = (performance.now() - t0) / 1000;
  if (sink === -1) console.error(sink); // keep the work observable
  return {
    seconds,
    wallSeconds: 0,
    ledgers: count,
    xdrBytes: bytes,
    peakRssMb: peakRssMb(),
    cpuSeconds: cpuSeconds() - cpu0,
  };
}

async function copyChild(a: CopyChildArgs): Promise<Measure> {
  const { copy } = await import("../lib/copy/run.ts");
  const { createLogger } = await import("../lib/runtime/log.ts");
  const { toObjectUrl, toStoreUrl } = await import("../lib/blob/mod.ts");
  const { toSourceUrl } = await import("../lib/source/mod.ts");
  const storage = a.storage ?? a.fleet?.storage ?? join(a.work, "out");
  const log = createLogger("text", () => {}, false);
  const t0 = performance.now();
  const cpu0 = cpuSeconds();
  const result = await copy({
    source: toSourceUrl(a.lake),
    storage: toStoreUrl(storage),
    start: a.start,
    end: a.end,
    partitionSize: a.partitionSize,
    network: "testnet",
    era: "bench",
    versionLabel: "v1",
    copierId: a.fleet?.copierId ?? "bench",
    catalog: a.catalog,
    stateDir: join(a.work, "state"),
    checkpoint: toObjectUrl(join(a.work, "state", "checkpoint.json")),
    concurrency: a.concurrency,
    progressInterval: 0,
    pollInterval: 0.2,
    fleet: a.fleet !== undefined,
    follow: false,
    compact: false,
    stallAfter: 600,
    fillGaps: false,
  }, log);
  const peak = peakRssMb();
  const cpu = cpuSeconds() - cpu0;
  const loopCpu = result.stats?.cpuSeconds ?? cpu;
  // Older copiers (before CopyStats) are measured around the call.
  const seconds = (performance.now() - t0) / 1000;
  const ledgers = result.committed.reduce((n, r) => n + r.end - r.start + 1, 0);
  const s = result.stats ?? { seconds, ledgers, xdrBytes: 0 };
  // The digest of what was stored, outside the timed loop.
  const hash = createHash("sha256");
  const files: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(".parquet")) files.push(p);
    }
  };
  if (a.storage === undefined) await walk(storage);
  files.sort();
  for (const f of files) {
    const h = createHash("sha256");
    for await (const chunk of (await Deno.open(f)).readable) h.update(chunk);
    hash.update(`${f.slice(storage.length)} ${h.digest("hex")}\n`);
  }
  if (!s.xdrBytes) {
    for (const f of files) {
      const { readPartitionRows } = await import("../lib/table/reader.ts");
      for (const r of await readPartitionRows(f)) s.xdrBytes += r.xdr_byte_length;
    }
  }
  return {
    seconds: s.seconds,
    wallSeconds: 0,
    ledgers: s.ledgers,
    xdrBytes: s.xdrBytes,
    peakRssMb: peak,
    cpuSeconds: loopCpu,
    fixedCpuSeconds: Math.max(0, cpu - loopCpu),
    stats: result.stats ? { ...result.stats } : undefined,
    digest: a.storage === undefined ? hash.digest("hex").slice(0, 16) : undefined,
  };
}

// ---- parent ---------------------------------------------------------------------------------

export async function child(
  args: string[],
  env?: Record<string, string>,
): Promise<Measure> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    // As bronze runs (main.ts's shebang, `deno task bronze`, the binary): with its V8 flags.
    args: ["run", "-A", ...V8_ARGS, fileURLToPath(import.meta.url), "--child", ...args],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wall = (performance.now() - t0) / 1000;
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `bench child ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}${stdout}`,
    );
  }
  const m = JSON.parse(stdout.trim().split("\n").at(-1)!) as Measure;
  m.wallSeconds = wall;
  return m;
}

export async function lakeFor(p: Profile, count: number): Promise<string> {
  const dir = join(BENCH, "lakes", `${p.name}-${p.ledgerBytes}-${count}-v2`);
  try {
    await Deno.stat(join(dir, ".config.json"));
    return dir;
  } catch { /* make it */ }
  const building = `${dir}.building-${Deno.pid}`;
  await Deno.remove(building, { recursive: true }).catch(() => {});
  const t0 = performance.now();
  console.error(`[bench] making lake ${p.name}: ${count} ledgers of ~${p.ledgerBytes} bytes`);
  await makeLake({
    url: building,
    network: "testnet",
    start: 1,
    count,
    lcmVersion: 2,
    ledgerBytes: p.ledgerBytes,
  });
  await Deno.rename(building, dir);
  console.error(`[bench]   made in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  return dir;
}

/** An initialised embedded catalog, copied into each run (PGlite's initdb takes seconds). */
async function embeddedTemplate(): Promise<string> {
  const dir = join(BENCH, "catalog-template");
  try {
    await Deno.stat(join(dir, "catalog", "PG_VERSION"));
    return dir;
  } catch { /* make it */ }
  const { openCatalog } = await import("../lib/metadata/catalog.ts");
  const building = `${dir}.building-${Deno.pid}`;
  const c = await openCatalog({ stateDir: building, log: () => {} });
  await c.close();
  await Deno.remove(join(building, "catalog.lock")).catch(() => {});
  await Deno.rename(building, dir);
  return dir;
}

async function pgAvailable(): Promise<boolean> {
  try {
    const pg = (await import("pg")).default;
    const c = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 2000 });
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}

interface Row {
  profile: string;
  run: string;
  measure: Measure;
  /** Baseline throughput / this run's: 1 is the limit, 2 takes twice as long. */
  timeVsBaseline: number;
  /** This run's throughput as a fraction of the baseline's. */
  ofBaseline: number;
  /** Manifest + catalog + checkpoint (steps 3-5) over the partitions' build + commit time. */
  commitShare?: number;
}

async function main() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      scale: { type: "string", default: "1" },
      profiles: { type: "string", default: PROFILES.map((p) => p.name).join(",") },
      concurrency: { type: "string", default: [...new Set([1, DEFAULT_C, 4])].join(",") },
      "no-postgres": { type: "boolean", default: false },
      "no-memory": { type: "boolean", default: false },
      "no-fleet": { type: "boolean", default: false },
      "no-faults": { type: "boolean", default: false },
      coldstart: { type: "boolean", default: false },
      "no-coldstart": { type: "boolean", default: false },
      out: { type: "string", default: join(BENCH, "report.json") },
      repeat: { type: "string", default: "2" },
    },
  });
  // The best of `repeat` runs: other load on the machine only ever slows a run down.
  const repeat = Math.max(1, Number(values.repeat));
  const scale = (values.quick ? 0.1 : 1) * Number(values.scale);
  if (!(scale > 0)) throw new Error(`--scale must be positive, got ${values.scale}`);
  const wanted = values.profiles!.split(",");
  const levels = values.concurrency!.split(",").map(Number);
  const usePg = !values["no-postgres"] && await pgAvailable();
  if (!values["no-postgres"] && !usePg) {
    console.error(`[bench] PostgreSQL at ${PG_ADMIN} is not reachable: skipping its runs`);
  }
  await Deno.mkdir(BENCH, { recursive: true });
  const template = await embeddedTemplate();
  const cold = values["no-coldstart"] ? [] : await import("./bench-coldstart.ts");
  const kit = { root: ROOT, bench: BENCH, child: (a: string[]) => child(a), lakeFor };
  if (values.coldstart && "coldstartRows" in cold) {
    // Issue 23's rows alone: start-up, the embedded/PostgreSQL ratio, the long runs' memory.
    const rows = await cold.coldstartRows(kit, {
      scale,
      rounds: Math.max(3, repeat),
      template,
      usePg,
    });
    await Deno.writeTextFile(values.out!, JSON.stringify({ scale, coldstart: rows }, null, 2));
    console.log(`Issue 23 (start-up and footprint):\n\n${cold.coldstartTable(rows)}`);
    return;
  }
  const rows: Row[] = [];
  const add = (profile: string, run: string, m: Measure, base: Measure) => {
    const rate = m.xdrBytes / m.seconds;
    const baseRate = base.xdrBytes / base.seconds;
    const s = m.stats;
    const row: Row = {
      profile,
      run,
      measure: m,
      timeVsBaseline: baseRate / rate,
      ofBaseline: rate / baseRate,
    };
    if (s) {
      const commit = s.publishSeconds + s.manifestSeconds + s.catalogSeconds +
        s.checkpointSeconds;
      row.commitShare = (s.manifestSeconds + s.catalogSeconds + s.checkpointSeconds) /
        (s.buildSeconds + commit);
    }
    rows.push(row);
    console.error(
      `[bench] ${profile} ${run}: ${(m.ledgers / m.seconds).toFixed(0)} ledgers/s, ${
        (rate / 1e6).toFixed(1)
      } MB/s, ${m.peakRssMb} MB peak, ${row.ofBaseline.toFixed(2)} of baseline`,
    );
  };

  for (const p of PROFILES.filter((p) => wanted.includes(p.name))) {
    const count = Math.max(p.partitionSize * 2, Math.round(p.count * scale));
    const lake = await lakeFor(p, count);
    const copyOnce = async (
      a: Omit<CopyChildArgs, "lake" | "work" | "start" | "catalog">,
      postgres: boolean,
    ): Promise<Measure> => {
      const work = await Deno.makeTempDir({ dir: BENCH, prefix: "run-" });
      try {
        if (!postgres) {
          await cp(join(template, "catalog"), join(work, "state", "catalog"), {
            recursive: true,
          });
        }
        const args: CopyChildArgs = { lake, work, start: 1, ...a };
        return postgres
          ? await withScratchDb(
            "bronze_bench",
            (catalog) => child(["copy", JSON.stringify({ ...args, catalog })]),
          )
          : await child(["copy", JSON.stringify(args)]);
      } finally {
        await Deno.remove(work, { recursive: true });
      }
    };
    const grid = { end: count, partitionSize: p.partitionSize };
    const runs: { name: string; once: () => Promise<Measure> }[] = [
      { name: "baseline", once: () => child(["baseline", lake, "1", String(count)]) },
      ...levels.map((c) => ({
        name: `embedded c=${c}`,
        once: () => copyOnce({ ...grid, concurrency: c }, false),
      })),
      ...(usePg ? levels : []).map((c) => ({
        name: `postgres c=${c}`,
        once: () => copyOnce({ ...grid, concurrency: c }, true),
      })),
    ];
    const fleetOnce = async (): Promise<Measure> => {
      const works = [
        await Deno.makeTempDir({ dir: BENCH, prefix: "run-" }),
        await Deno.makeTempDir({ dir: BENCH, prefix: "run-" }),
      ];
      try {
        const storage = join(works[0], "shared-out");
        const ms = await withScratchDb(
          "bronze_bench",
          (catalog) =>
            Promise.all(works.map((work, n) =>
              child([
                "copy",
                JSON.stringify({
                  lake,
                  work,
                  start: 1,
                  ...grid,
                  concurrency: levels[0],
                  catalog,
                  fleet: { storage, copierId: `bench-${n}` },
                }),
              ])
            )),
        );
        return {
          seconds: Math.max(...ms.map((x) => x.seconds)),
          wallSeconds: Math.max(...ms.map((x) => x.wallSeconds)),
          ledgers: ms.reduce((n, x) => n + x.ledgers, 0),
          xdrBytes: ms.reduce((n, x) => n + x.xdrBytes, 0),
          peakRssMb: Math.max(...ms.map((x) => x.peakRssMb)),
          cpuSeconds: ms.reduce((n, x) => n + x.cpuSeconds, 0),
          fixedCpuSeconds: ms.reduce((n, x) => n + (x.fixedCpuSeconds ?? 0), 0),
          digest: ms[0].digest === ms[1].digest ? ms[0].digest : "differs",
        };
      } finally {
        for (const w of works) await Deno.remove(w, { recursive: true });
      }
    };
    if (usePg && !values["no-fleet"]) {
      // A fleet of two copiers (separate processes, one catalog, one storage) on this machine's
      // cores against one copier at the same concurrency: the cost of sharing, and what a second
      // process adds where one does not use every core.
      runs.push({ name: `postgres fleet of 2, c=${levels[0]} each`, once: () => fleetOnce() });
    }
    if (p.memoryLedgers && !values["no-memory"]) {
      const n = Math.min(count, p.memoryLedgers);
      runs.push({
        name: `memory: 1 partition of ${n}, c=1`,
        once: () => copyOnce({ end: n, partitionSize: 10_000, concurrency: 1 }, false),
      });
    }
    // Rounds, each measuring every run once: a machine that slows down (or speeds up) during
    // the bench shifts the baseline with the copies instead of skewing their ratios.
    const best = new Map<string, Measure>();
    for (let round = 0; round < repeat; round++) {
      for (const r of runs) {
        const m = await r.once();
        console.error(
          `[bench] ${p.name} ${r.name}, round ${round + 1}/${repeat}: ${
            (m.xdrBytes / m.seconds / 1e6).toFixed(1)
          } MB/s`,
        );
        const prev = best.get(r.name);
        if (!prev || m.seconds < prev.seconds) best.set(r.name, m);
      }
    }
    const base = best.get("baseline")!;
    for (const r of runs) add(p.name, r.name, best.get(r.name)!, base);
  }

  const faults = values["no-faults"] ? null : await faultRuns(scale, repeat, template);
  for (const { runs } of faults?.stores ?? []) {
    for (const [run, m] of runs) add("faults", run, m, runs[0][1]);
  }

  const machine = {
    nproc: navigator.hardwareConcurrency,
    cpu: /model name\s*:\s*(.*)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? "?",
    memTotalGb: Math.round(
      Number(/MemTotal:\s+(\d+)/.exec(await Deno.readTextFile("/proc/meminfo"))?.[1] ?? 0) /
        1024 / 1024,
    ),
    deno: Deno.version.deno,
    date: new Date().toISOString(),
  };
  const goals = targets(rows, machine.nproc);
  const coldRows = "coldstartRows" in cold
    ? await cold.coldstartRows(kit, { scale, rounds: Math.max(3, repeat), template, usePg })
    : [];
  await Deno.writeTextFile(
    values.out!,
    JSON.stringify(
      {
        machine,
        scale,
        rows,
        targets: goals,
        faults: faults && { seed: faults.seed },
        coldstart: coldRows,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(table(rows));
  for (const { store, runs } of faults?.stores ?? []) {
    const [none, some] = runs.map(([, m]) => m.xdrBytes / m.seconds);
    console.log(
      `\nThroughput at 1% faults, ${store}: ${(some / none).toFixed(2)} of none's (behind the ` +
        `fault proxy, seed ${faults!.seed}; "of baseline" is of its no-fault run)`,
    );
  }
  console.log(`\nTargets (issue 14), at the default concurrency (${DEFAULT_C}):\n`);
  console.log(targetTable(goals));
  if ("coldstartTable" in cold) {
    console.log(`\nIssue 23 (start-up and footprint):\n\n${cold.coldstartTable(coldRows)}`);
  }
  console.log(
    `\n${machine.nproc} cores, ${machine.cpu}, ${machine.memTotalGb} GB; report: ${values.out}`,
  );
}

/** What the faults runs copy: enough requests that 1% of them is a few dozen faults. */
const FAULT_LAKE = { ledgerBytes: 8192, count: 3000, partitionSize: 250 };
/** 1% of every request: of reads, 5xx, throttling, cut bodies, stalls; of writes, lost answers for cut bodies. */
const ONE_PERCENT = {
  server: 0.003,
  throttle: 0.003,
  cutBody: 0.003,
  stall: 0.001,
  lostAnswer: 0.003,
};

/** Where the faults runs keep the lake and the storage: an S3 and a GCS server of the tests. */
const FAULT_STORES = ["s3", "gcs"] as const;

/**
 * The faults rows: the same copy (lake and storage on s3rver, then on the GCS emulator, behind the
 * fault proxy, embedded catalog, the default concurrency) with no faults and with 1%, in rounds.
 * A stalled request is abandoned after 2 s (BRONZE_ATTEMPT_TIMEOUT; the default, 30 s, would make
 * one stall the whole story of a short bench); the proxy holds it for 4.
 */
async function faultRuns(
  scale: number,
  repeat: number,
  template: string,
): Promise<{ seed: number; stores: { store: string; runs: [string, Measure][] }[] }> {
  const { startS3rver, startGcsEmulator, s3Env } = await import("../tests/support/servers.ts");
  const { startFaultProxy } = await import("../tests/support/fault_proxy.ts");
  const { S3Store, s3OptionsFromEnv } = await import("../lib/blob/s3.ts");
  const { GcsStore, gcsOptionsFromEnv } = await import("../lib/blob/gcs.ts");
  const { toStoreUrl } = await import("../lib/blob/url.ts");
  const count = Math.max(FAULT_LAKE.partitionSize * 2, Math.round(FAULT_LAKE.count * scale));
  const stores: { store: string; runs: [string, Measure][] }[] = [];
  let seed = 0;
  for (const store of FAULT_STORES) {
    const server = store === "s3"
      ? await startS3rver(["lake", "parts"]).then((s) => ({ endpoint: s.endpoint, stop: s.stop }))
      : await startGcsEmulator().then((s) => ({ endpoint: s.host, stop: s.stop }));
    // One seed for both stores: the same requests meet the same faults.
    const proxy = await startFaultProxy({
      target: server.endpoint,
      flavor: store,
      stallMs: 4000,
      ...(seed ? { seed } : {}),
      log: (l) => console.error(`[bench] ${l}`),
    });
    seed = proxy.seed;
    const envOf = (endpoint: string): Record<string, string> =>
      store === "s3" ? s3Env(endpoint) : { STORAGE_EMULATOR_HOST: endpoint };
    try {
      const lakeUrl = toStoreUrl(`${store === "s3" ? "s3" : "gs"}://lake/bench`) as BucketUrl;
      const lake: ObjectStore = store === "s3"
        ? new S3Store(lakeUrl, s3OptionsFromEnv(envOf(server.endpoint)))
        : new GcsStore(lakeUrl, gcsOptionsFromEnv(envOf(server.endpoint)));
      await makeLake({
        store: lake,
        network: "testnet",
        start: 1,
        count,
        lcmVersion: 2,
        ledgerBytes: FAULT_LAKE.ledgerBytes,
        seed: 7,
      });
      await lake.close?.();
      const env = { ...envOf(proxy.url), BRONZE_ATTEMPT_TIMEOUT: "2s" };
      let n = 0;
      const once = async (rates: Record<string, number>) => {
        const work = await Deno.makeTempDir({ dir: BENCH, prefix: "run-" });
        try {
          await cp(join(template, "catalog"), join(work, "state", "catalog"), { recursive: true });
          proxy.setRates(rates);
          const args: CopyChildArgs = {
            lake: lakeUrl.url,
            storage: `${lakeUrl.url.split(":")[0]}://parts/run-${++n}`,
            work,
            start: 1,
            end: count,
            partitionSize: FAULT_LAKE.partitionSize,
            concurrency: DEFAULT_C,
          };
          return await child(["copy", JSON.stringify(args)], env);
        } finally {
          proxy.setRates({});
          await Deno.remove(work, { recursive: true });
        }
      };
      const runs: [string, Record<string, number>][] = [
        [`${store} via the fault proxy, no faults`, {}],
        [`${store} via the fault proxy, 1% faults`, ONE_PERCENT],
      ];
      const best = new Map<string, Measure>();
      for (let round = 0; round < repeat; round++) {
        for (const [name, rates] of runs) {
          const m = await once(rates);
          console.error(
            `[bench] faults ${name}, round ${round + 1}/${repeat}: ${
              (m.xdrBytes / m.seconds / 1e6).toFixed(1)
            } MB/s`,
          );
          const prev = best.get(name);
          if (!prev || m.seconds < prev.seconds) best.set(name, m);
        }
      }
      stores.push({ store, runs: runs.map(([name]) => [name, best.get(name)!]) });
    } finally {
      await proxy.stop();
      await server.stop();
    }
  }
  return { seed, stores };
}

interface Target {
  profile: string;
  target: string;
  measured: number;
  limit: number;
  /** The measured value must be at most (`max`) or at least (`min`) the limit. */
  bound: "max" | "min";
  met: boolean;
}

const cpuPerGb = (m: Measure) => m.cpuSeconds / (m.xdrBytes / 1e9);

/** Each target of issue 14 beside what this run measured. */
function targets(rows: Row[], nproc: number): Target[] {
  const out: Target[] = [];
  const add = (
    profile: string,
    target: string,
    measured: number,
    bound: "max" | "min",
    limit: number,
  ) =>
    out.push({
      profile,
      target,
      measured,
      limit,
      bound,
      met: bound === "max" ? measured <= limit : measured >= limit,
    });
  for (const profile of [...new Set(rows.map((r) => r.profile))]) {
    const find = (run: string) => rows.find((r) => r.profile === profile && r.run === run);
    const base = find("baseline");
    const pg = find(`postgres c=${DEFAULT_C}`);
    const emb = find(`embedded c=${DEFAULT_C}`);
    if (!base) continue;
    if (pg && profile !== "2k") {
      add(
        profile,
        "CPU per GB, postgres, × the baseline's",
        cpuPerGb(pg.measure) / cpuPerGb(base.measure),
        "max",
        1.4,
      );
      add(profile, "throughput, postgres, × the baseline's", pg.ofBaseline, "min", 1.4);
    }
    if (pg && profile === "2k") {
      add(
        profile,
        "throughput per core, postgres, × the baseline's",
        pg.ofBaseline / Math.min(DEFAULT_C, nproc),
        "min",
        0.8,
      );
    }
    if (pg && emb) {
      add(profile, "embedded throughput, × postgres's", emb.ofBaseline / pg.ofBaseline, "min", 0.9);
      add(
        profile,
        "embedded CPU per GB, × postgres's",
        cpuPerGb(emb.measure) / cpuPerGb(pg.measure),
        "max",
        1.1,
      );
    }
    for (const r of [pg, emb]) {
      if (r) add(profile, `peak RSS MB, ${r.run.split(" ")[0]}`, r.measure.peakRssMb, "max", 600);
    }
  }
  return out;
}

function targetTable(goals: Target[]): string {
  return markdown(
    ["profile", "target", "measured", "limit", "met"],
    goals.map((g) => [
      g.profile,
      g.target,
      g.measured >= 100 ? g.measured.toFixed(0) : g.measured.toFixed(2),
      `${g.bound === "max" ? "≤" : "≥"} ${g.limit}`,
      g.met ? "yes" : "NO",
    ]),
  );
}

function table(rows: Row[]): string {
  return markdown(
    [
      "profile",
      "run",
      "ledgers",
      "ledgers/s",
      "MB/s",
      "of baseline",
      "time ratio",
      "catalog+ckpt",
      "CPU s/GB",
      "fixed CPU s",
      "peak RSS MB",
      "e2e s",
      "digest",
    ],
    rows.map((r) => [
      r.profile,
      r.run,
      String(r.measure.ledgers),
      (r.measure.ledgers / r.measure.seconds).toFixed(0),
      (r.measure.xdrBytes / r.measure.seconds / 1e6).toFixed(1),
      r.ofBaseline.toFixed(2),
      r.timeVsBaseline.toFixed(2),
      r.commitShare === undefined ? "" : `${(100 * r.commitShare).toFixed(2)}%`,
      cpuPerGb(r.measure).toFixed(1),
      r.measure.fixedCpuSeconds === undefined ? "" : r.measure.fixedCpuSeconds.toFixed(1),
      String(r.measure.peakRssMb),
      r.measure.wallSeconds.toFixed(1),
      r.measure.digest ?? "",
    ]),
  );
}

function markdown(head: string[], body: string[][]): string {
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)]
    .join("\n");
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    const [, kind, ...rest] = Deno.args;
    const m = kind === "baseline"
      ? await baselineChild(rest[0], Number(rest[1]), Number(rest[2]))
      : await copyChild(JSON.parse(rest[0]));
    console.log(JSON.stringify(m));
    Deno.exit(0); // PGlite and pg pools may hold the loop open
  }
  await main();
}
