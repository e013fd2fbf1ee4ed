/**
 * The rows of issue 23 ("a first run in a second, memory flat"), for `deno task bench` (and alone:
 * `deno task bench --coldstart`):
 *
 *   first use   `bronze migrate` on an empty state dir (the embedded catalog made)
 *   open        `bronze coverage` on an existing embedded catalog
 *   demo        `deno task demo` on a fresh clone (the tracked files, no node_modules, no demo/)
 *   2,000 x 372 KB   the same copy with the embedded catalog and with PostgreSQL, c=2
 *   60,000 x 9.5 KB  10,000-ledger partitions, PostgreSQL, c=2: peak RSS
 *   300,000 x 2 KB   embedded, c=2: peak RSS
 *
 * Whole commands are timed from outside with /usr/bin/time (wall seconds, the largest process's
 * peak RSS), alternating in rounds; each figure is the median of its rounds, and the copies the
 * best (as in the rest of the bench). A busy machine slows every run: quote the ratios.
 */
import { join } from "node:path";
import { cp } from "node:fs/promises";
import type { CopyChildArgs, Measure, Profile } from "./_bench_types.ts";
import { withScratchDb } from "./_scratch_db.ts";
import { V8_FLAGS } from "./compile.ts";

const V8_ARGS = [`--v8-flags=${V8_FLAGS.join(",")}`];

/** What this section uses of bench.ts, handed over (bench.ts imports this module). */
export interface BenchKit {
  root: string;
  bench: string;
  child(args: string[]): Promise<Measure>;
  lakeFor(p: Profile, count: number): Promise<string>;
}

let BENCH = "";
let ROOT = "";
let child: BenchKit["child"];
let lakeFor: BenchKit["lakeFor"];

export interface ColdRow {
  row: string;
  seconds: number;
  cpuSeconds?: number;
  peakRssMb: number;
  target: string;
  met: boolean;
  /** Extra figures: ratios against a baseline, the copies' throughput. */
  note?: string;
}

interface Timed {
  seconds: number;
  /** User + system CPU seconds: what a busy machine does not inflate. */
  cpuSeconds: number;
  peakRssMb: number;
}

/** Runs `cmd` in `cwd` under /usr/bin/time: wall seconds and the largest process's peak RSS. */
async function timed(cmd: string[], cwd?: string): Promise<Timed> {
  const report = await Deno.makeTempFile({ dir: BENCH, prefix: "time-" });
  try {
    const out = await new Deno.Command("/usr/bin/time", {
      args: ["-f", "%e %M %U %S", "-o", report, ...cmd],
      cwd: cwd ?? ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    const [wall, kb, user, sys] = (await Deno.readTextFile(report)).trim().split("\n").at(-1)!
      .split(" ");
    if (!out.success) {
      throw new Error(`${cmd.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
    }
    return {
      seconds: Number(wall),
      cpuSeconds: Number(user) + Number(sys),
      peakRssMb: Math.round(Number(kb) / 1024),
    };
  } finally {
    await Deno.remove(report);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function medianOf(runs: Timed[]): Timed {
  return {
    seconds: median(runs.map((r) => r.seconds)),
    cpuSeconds: median(runs.map((r) => r.cpuSeconds)),
    peakRssMb: median(runs.map((r) => r.peakRssMb)),
  };
}

/** `bronze` from source, as its shebang and `deno task bronze` run it (with its V8 flags). */
const bronze = () => [Deno.execPath(), "run", "-A", ...V8_ARGS, join(ROOT, "main.ts")];

/** A fresh clone: the tracked files of this checkout as they are now, beside `shared/` as here. */
async function freshClone(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const top = await Deno.makeTempDir({ dir: BENCH, prefix: "clone-" });
  const dir = join(top, "bronze");
  const files = new TextDecoder().decode(
    (await new Deno.Command("git", { args: ["ls-files", "-z"], cwd: ROOT, stdout: "piped" })
      .output()).stdout,
  ).split("\0").filter(Boolean);
  for (const f of files) {
    await Deno.mkdir(join(dir, f, ".."), { recursive: true });
    await Deno.copyFile(join(ROOT, f), join(dir, f)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err; // deleted, not yet committed
    });
  }
  // The demo takes the real testnet sample from ../shared when a checkout has it there.
  try {
    await Deno.symlink(await Deno.realPath(join(ROOT, "..", "shared")), join(top, "shared"));
  } catch { /* no shared folder: the demo makes a synthetic lake */ }
  return { dir, remove: () => Deno.remove(top, { recursive: true }) };
}

/** The three start-up rows, in `rounds` rounds. */
async function startRows(rounds: number): Promise<ColdRow[]> {
  const existing = await Deno.makeTempDir({ dir: BENCH, prefix: "existing-" });
  await timed([...bronze(), "migrate", "--state-dir", join(existing, "state")]);
  const first: Timed[] = [];
  const open: Timed[] = [];
  const demo: Timed[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const empty = await Deno.makeTempDir({ dir: BENCH, prefix: "first-" });
      try {
        first.push(await timed([...bronze(), "migrate", "--state-dir", join(empty, "state")]));
      } finally {
        await Deno.remove(empty, { recursive: true });
      }
      open.push(await timed([...bronze(), "coverage", "--state-dir", join(existing, "state")]));
      const clone = await freshClone();
      try {
        demo.push(await timed([Deno.execPath(), "task", "demo"], clone.dir));
      } finally {
        await clone.remove();
      }
      console.error(
        `[bench] start-up round ${r + 1}/${rounds}: first use ${first.at(-1)!.seconds} s, ` +
          `open ${open.at(-1)!.seconds} s, demo ${demo.at(-1)!.seconds} s`,
      );
    }
  } finally {
    await Deno.remove(existing, { recursive: true });
  }
  const row = (name: string, m: Timed, maxS: number, maxMb: number): ColdRow => ({
    row: name,
    seconds: m.seconds,
    cpuSeconds: m.cpuSeconds,
    peakRssMb: m.peakRssMb,
    target: `≤ ${maxS} s, ≤ ${maxMb} MB`,
    met: m.seconds <= maxS && m.peakRssMb <= maxMb,
  });
  return [
    row(
      "embedded catalog, first use (`bronze migrate`, empty state dir)",
      medianOf(first),
      1.5,
      250,
    ),
    row("embedded catalog, opening an existing one (`bronze coverage`)", medianOf(open), 0.5, 150),
    row("`deno task demo` on a fresh clone", medianOf(demo), 5, 350),
  ];
}

/** A copy in a fresh bench child: embedded (from the bench's catalog template) or PostgreSQL. */
async function copyRun(
  lake: string,
  grid: { end: number; partitionSize: number; concurrency: number },
  catalog: "embedded" | "postgres",
  template: string,
): Promise<Measure> {
  const work = await Deno.makeTempDir({ dir: BENCH, prefix: "run-" });
  try {
    const args: CopyChildArgs = { lake, work, start: 1, ...grid };
    if (catalog === "postgres") {
      return await withScratchDb(
        "bronze_bench",
        (dsn) => child(["copy", JSON.stringify({ ...args, catalog: dsn })]),
      );
    }
    await cp(join(template, "catalog"), join(work, "state", "catalog"), { recursive: true });
    return await child(["copy", JSON.stringify(args)]);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** The copy rows: the embedded/PostgreSQL ratio and the two long runs' peak RSS. */
async function copyRows(
  scale: number,
  rounds: number,
  template: string,
  usePg: boolean,
): Promise<ColdRow[]> {
  const rows: ColdRow[] = [];
  const n = (count: number, partition: number) =>
    Math.max(partition * 2, Math.round(count * scale));
  // 2,000 pubnet-sized ledgers (372 KB), 100-ledger partitions.
  const big = { name: "372k", ledgerBytes: 372_000, count: 2000, partitionSize: 100 };
  const bigLake = await lakeFor({ ...big, memoryLedgers: 0 }, n(big.count, big.partitionSize));
  const grid = { end: n(big.count, big.partitionSize), partitionSize: 100, concurrency: 2 };
  if (usePg) {
    const best = new Map<string, Measure>();
    for (let r = 0; r < rounds; r++) {
      for (const kind of ["baseline", "embedded", "postgres"] as const) {
        const m = kind === "baseline"
          ? await child(["baseline", bigLake, "1", String(grid.end)])
          : await copyRun(bigLake, grid, kind, template);
        const prev = best.get(kind);
        if (!prev || m.seconds < prev.seconds) best.set(kind, m);
      }
    }
    const rate = (m: Measure) => m.xdrBytes / m.seconds;
    const [base, emb, pg] = ["baseline", "embedded", "postgres"].map((k) => best.get(k)!);
    const ratio = rate(emb) / rate(pg);
    rows.push({
      row: `${grid.end} ledgers of 372 KB, embedded vs PostgreSQL, c=2 (throughput)`,
      seconds: emb.seconds,
      cpuSeconds: emb.cpuSeconds + (emb.fixedCpuSeconds ?? 0),
      peakRssMb: emb.peakRssMb,
      target: "embedded ≥ 0.9 × PostgreSQL",
      met: ratio >= 0.9,
      note: `embedded ${(rate(emb) / rate(base)).toFixed(2)}x, PostgreSQL ${
        (rate(pg) / rate(base)).toFixed(2)
      }x the baseline: ${ratio.toFixed(2)}; PostgreSQL ${
        pg.seconds.toFixed(1)
      } s, ${pg.peakRssMb} MB`,
    });
  }
  const long = async (
    p: { name: string; ledgerBytes: number; count: number },
    catalog: "embedded" | "postgres",
  ) => {
    const count = n(p.count, 10_000);
    const lake = await lakeFor({ ...p, partitionSize: 10_000, memoryLedgers: 0 }, count);
    let best: Measure | undefined;
    for (let r = 0; r < rounds; r++) {
      const m = await copyRun(
        lake,
        { end: count, partitionSize: 10_000, concurrency: 2 },
        catalog,
        template,
      );
      if (!best || m.peakRssMb < best.peakRssMb) best = m;
    }
    rows.push({
      row:
        `${count} ledgers of ${p.ledgerBytes / 1000} KB, 10,000-ledger partitions, ${catalog}, ` +
        `c=2: peak RSS`,
      seconds: best!.seconds,
      cpuSeconds: best!.cpuSeconds + (best!.fixedCpuSeconds ?? 0),
      peakRssMb: best!.peakRssMb,
      target: "< 400 MB",
      met: best!.peakRssMb < 400,
      note: `${(best!.ledgers / best!.seconds).toFixed(0)} ledgers/s`,
    });
  };
  if (usePg) await long({ name: "9k5", ledgerBytes: 9_500, count: 60_000 }, "postgres");
  await long({ name: "2k", ledgerBytes: 2048, count: 300_000 }, "embedded");
  return rows;
}

/** Every row of issue 23. */
export async function coldstartRows(
  kit: BenchKit,
  opts: { scale: number; rounds: number; template: string; usePg: boolean },
): Promise<ColdRow[]> {
  ({ root: ROOT, bench: BENCH, child, lakeFor } = kit);
  return [
    ...await startRows(opts.rounds),
    ...await copyRows(opts.scale, Math.min(2, opts.rounds), opts.template, opts.usePg),
  ];
}

export function coldstartTable(rows: ColdRow[]): string {
  const head = ["row (issue 23)", "wall s", "CPU s", "peak RSS MB", "target", "met", "note"];
  const body = rows.map((r) => [
    r.row,
    r.seconds.toFixed(2),
    r.cpuSeconds?.toFixed(2) ?? "",
    String(r.peakRssMb),
    r.target,
    r.met ? "yes" : "NO",
    r.note ?? "",
  ]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)]
    .join("\n");
}
