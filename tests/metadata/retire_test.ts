/**
 * bronze retire: a dataset version retired after a re-copy as another version. Its lineage stays;
 * copy refuses to write into it; coverage shows it retired and --fail-on-gaps ignores it; gc
 * --apply deletes its files once it has been retired longer than --older-than (and not before),
 * leaving the other version's untouched; verify reports its partitions as retired, not failed.
 */
import { resolveSettings } from "../../lib/settings/mod.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { hostname } from "node:os";
import { copy } from "../../lib/copy/run.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import { DatasetRetiredError, retireDatasets } from "../../lib/metadata/retire.ts";
import { ClaimSession } from "../../lib/metadata/claims.ts";
import { formatRetired } from "../../lib/cli/commands/retire.ts";
import { coverageCommand, EXIT_GAPS } from "../../lib/cli/commands/coverage.ts";
import { verifyCommand } from "../../lib/cli/commands/verify.ts";
import { gcCommand } from "../../lib/cli/commands/gc.ts";
import { manifestKey, partitionKey } from "../../lib/table/layout.ts";
import { type CatalogTarget, catalogTarget, poolOf } from "../support/catalogs.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { copyOptions } from "../support/copy.ts";
import { runCli } from "../support/cli.ts";

const LAKE = { network: "testnet", start: 1, count: 1000, lcmVersion: 2 } as const;
const V1 = "bronze.ledgers_lcm_raw (testnet/pre_p23/v1)";
const ds = (version: string) => ({ network: "testnet", eraId: "pre_p23", version });
const ISO = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z";

async function sql<T = Record<string, unknown>>(target: CatalogTarget, text: string): Promise<T[]> {
  const c = await target.open();
  try {
    return (await poolOf(c).query(text)).rows as T[];
  } finally {
    await c.close();
  }
}

/** Every file of one version's partitions, with its sha256. */
async function files(root: string, version: string, ranges: number[][]): Promise<string[]> {
  const out: string[] = [];
  for (const [start, end] of ranges) {
    for (
      const key of [
        manifestKey(ds(version), { start, end }),
        partitionKey(ds(version), { start, end }),
      ]
    ) {
      const bytes = await readFile(join(root, key)).catch(() => null);
      out.push(`${key} ${bytes ? createHash("sha256").update(bytes).digest("hex") : "absent"}`);
    }
  }
  return out;
}

Deno.test("retire v1 after a re-copy as v2: copy refuses v1, coverage and verify say retired, gc --apply deletes v1's files only once retired long enough, lineage stays", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const env = { CATALOG_DSN: target.dsn!, STATE_DIR: target.stateDir };
  // v1 with a gap (101-200 missing); v2 complete.
  for (const [start, end] of [[1, 100], [201, 300]]) {
    await copy(copyOptions(target, { source, storage: out.path, start, end }), memoryLogger());
  }
  await copy(
    copyOptions(target, {
      source,
      storage: out.path,
      start: 1,
      end: 300,
      versionLabel: "v2",
      checkpoint: join(target.stateDir, "v2.json"),
    }),
    memoryLogger(),
  );
  const coverage = async (flags: Record<string, string | boolean>) => {
    const lines: string[] = [];
    const code = await coverageCommand(
      resolveSettings(
        "coverage",
        { catalog: target.dsn, stateDir: target.stateDir, ...flags },
        () => undefined,
      ),
      (l) => lines.push(l),
      () => {},
    );
    return { code, lines };
  };
  assert.equal((await coverage({ failOnGaps: true })).code, EXIT_GAPS, "v1's gap fails, for now");

  // Refusals first: no filter, no reason, nothing matching.
  const noFilter = await runCli(["retire", "--reason", "x"], { env });
  assert.deepEqual([noFilter.code, noFilter.stderr], [
    2,
    "bronze: retire needs at least one of --network, --era, --version-label, --dataset: it retires every dataset they match\n",
  ]);
  const noReason = await runCli(["retire", "--version-label", "v1"], { env });
  assert.deepEqual([noReason.code, noReason.stderr], [2, "bronze: --reason is required\n"]);
  const none = await runCli(["retire", "--version-label", "v9", "--reason", "x"], { env });
  assert.deepEqual([none.code, none.stderr], [
    1,
    "bronze: no dataset matches --version-label v9: nothing to retire\n",
  ]);

  const retired = await runCli(
    ["retire", "--network", "testnet", "--version-label", "v1", "--reason", "superseded by v2"],
    { env },
  );
  assert.equal(retired.code, 0, retired.stderr);
  assert.match(
    retired.stdout,
    new RegExp(
      `^retired ${
        V1.replace(/[().]/g, "\\$&")
      } at (${ISO}) \\(superseded by v2\\); its lineage stays, copy no longer writes into it, \`bronze gc --apply\` deletes its files once it has been retired longer than gc's --older-than\n$`,
    ),
  );
  const at = /at (\S+) \(/.exec(retired.stdout)![1];
  // Idempotent: the first retirement stands.
  const again = await runCli(["retire", "--version-label", "v1", "--reason", "other"], { env });
  assert.deepEqual([again.code, again.stdout], [
    0,
    `${V1} was already retired at ${at} (superseded by v2); nothing changed\n`,
  ]);
  assert.deepEqual(
    await sql(
      target,
      `SELECT change_type, description FROM _meta_changes WHERE change_type = 'retire'`,
    ),
    [{ change_type: "retire", description: "retired: superseded by v2" }],
  );

  // copy refuses to write into it, through the CLI (exit 2) and the library alike.
  const refused = await runCli(["copy"], {
    env: {
      ...env,
      SOURCE_URL: source,
      STORAGE_URL: out.path,
      NETWORK: "testnet",
      ERA_ID: "pre_p23",
      LEDGER_START: "101",
      LEDGER_END: "200",
      PARTITION_SIZE: "100",
    },
  });
  assert.deepEqual([refused.code, refused.stderr], [
    2,
    `bronze: ${V1} was retired at ${at} (superseded by v2); copy does not write into a retired ` +
    `dataset: give another --version-label\n`,
  ]);
  await assert.rejects(
    () =>
      copy(
        copyOptions(target, { source, storage: out.path, start: 101, end: 200 }),
        memoryLogger(),
      ),
    DatasetRetiredError,
  );

  // coverage: shown as retired; its gap no longer fails --fail-on-gaps.
  const text = await coverage({});
  assert.ok(text.lines.some((l) => l.startsWith(`${V1} (retired)  `)), text.lines.join("\n"));
  assert.deepEqual(text.lines.slice(text.lines.indexOf("") + 1, text.lines.indexOf("") + 3), [
    "retired (copy refuses them, --fail-on-gaps ignores them, gc deletes their files):",
    `  ${V1}: retired at ${at} (superseded by v2)`,
  ]);
  const failing = await coverage({ failOnGaps: true, json: true });
  assert.equal(failing.code, 0);
  const json = JSON.parse(failing.lines.join(""));
  assert.deepEqual(
    json.datasets.map((d: Record<string, unknown>) => [d.version, d.retired_at, d.retired_reason]),
    [["v1", at, "superseded by v2"], ["v2", null, null]],
  );

  const v1Files = [[1, 100], [201, 300]];
  const v2Files = [[1, 100], [101, 200], [201, 300]];
  const v1Before = await files(out.path, "v1", v1Files);
  const v2Before = await files(out.path, "v2", v2Files);
  const gc = async (flags: Record<string, string | boolean>) => {
    const lines: string[] = [];
    const code = await gcCommand(
      resolveSettings("gc", {
        catalog: target.dsn,
        stateDir: target.stateDir,
        storage: out.path,
        ...flags,
      }, () => undefined),
      (l) => lines.push(l),
      () => {},
    );
    return { code, lines };
  };
  // Retired moments ago: within the default grace period of 24h its files stay, even with --apply.
  const early = await gc({ apply: true });
  assert.equal(early.code, 0);
  assert.ok(
    early.lines.some((l) =>
      new RegExp(
        `^${
          V1.replace(/[().]/g, "\\$&")
        }: retired \\S+ ago \\(superseded by v2\\): its files go once it has been retired for 24h$`,
      )
        .test(l)
    ),
    early.lines.join("\n"),
  );
  assert.equal(early.lines.at(-1), "deleted 0 objects (0 B), kept 0");
  assert.deepEqual(await files(out.path, "v1", v1Files), v1Before);

  // Past the grace period (0s: any retirement is older): v1's files go, v2's stay.
  const dry = await gc({ olderThan: "0s" });
  assert.equal(dry.lines.at(-1)?.startsWith("dry run: 4 objects ("), true, dry.lines.join("\n"));
  assert.deepEqual(await files(out.path, "v1", v1Files), v1Before);
  const applied = await gc({ olderThan: "0s", apply: true, json: true });
  assert.equal(applied.code, 0);
  const report = JSON.parse(applied.lines.join(""));
  assert.deepEqual(
    report.objects.map((o: Record<string, string>) => [o.outcome, o.what, o.key]),
    v1Files.flatMap(([start, end]) => [
      ["deleted", "retired", manifestKey(ds("v1"), { start, end })],
      ["deleted", "retired", partitionKey(ds("v1"), { start, end })],
    ]),
  );
  assert.match(report.objects[0].why, /^dataset retired \S+ ago \(superseded by v2\)$/);
  assert.deepEqual(
    await files(out.path, "v1", v1Files),
    v1Before.map((l) => l.replace(/ \S+$/, " absent")),
  );
  assert.deepEqual(await files(out.path, "v2", v2Files), v2Before, "the other version untouched");
  await assert.rejects(() => stat(join(out.path, partitionKey(ds("v1"), { start: 1, end: 100 }))));

  // Lineage stays forever.
  assert.deepEqual(
    await sql(
      target,
      `SELECT d.version, count(*)::int AS n FROM _meta_lineage l JOIN _meta_datasets d
       ON d.id = l.dataset_id GROUP BY 1 ORDER BY 1`,
    ),
    [{ version: "v1", n: 2 }, { version: "v2", n: 3 }],
  );

  // verify: v1's missing files are expected, not failures; v2 passes.
  const lines: string[] = [];
  const code = await verifyCommand(
    {
      catalog: target.dsn,
      stateDir: target.stateDir,
      progressInterval: 0,
      json: false,
      logFormat: "text",
      noRecord: false,
    },
    (l) => lines.push(l),
    memoryLogger(),
  );
  assert.equal(code, 0, lines.join("\n"));
  assert.match(lines[0], /^verified 3 partitions \(300 ledgers, .*\): 3 passed, 0 failed$/);
  assert.deepEqual(lines.slice(1), [
    `retired: 2 partitions (200 ledgers) of ${V1} not checked: retired at ${at} (superseded by v2); gc deletes its files`,
  ]);
});

Deno.test("retire on the embedded catalog: copy into the retired dataset is refused", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("embedded");
  await using out = await tempDir();
  await copy(
    copyOptions(target, { source, storage: out.path, start: 1, end: 100 }),
    memoryLogger(),
  );
  const r = await runCli(
    ["retire", "--version-label", "v1", "--reason", "test", "--json"],
    { env: { STATE_DIR: target.stateDir } },
  );
  assert.equal(r.code, 0, r.stderr);
  const [d] = JSON.parse(r.stdout).datasets;
  assert.deepEqual([d.version, d.reason, d.already_retired, d.copiers], ["v1", "test", false, []]);
  await assert.rejects(
    () =>
      copy(
        copyOptions(target, { source, storage: out.path, start: 101, end: 200 }),
        memoryLogger(),
      ),
    (err: Error) => {
      assert.ok(err instanceof DatasetRetiredError);
      assert.equal(err.exitCode, 2);
      assert.equal(
        err.message,
        `${V1} was retired at ${d.retired_at} (test); copy does not write into a retired dataset: ` +
          `give another --version-label`,
      );
      return true;
    },
  );
});

Deno.test("retire while a copier still copies into the dataset: retire names it, and gc --apply keeps what its live claim covers", async () => {
  const source = await syntheticLake(LAKE);
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  await copy(
    copyOptions(target, { source, storage: out.path, start: 1, end: 200 }),
    memoryLogger(),
  );
  const c = await target.open();
  const { rows: [{ id }] } = await poolOf(c).query("SELECT id FROM _meta_datasets");
  const copier = await ClaimSession.open(c, { id, label: V1 }, "late-copier");
  try {
    await copier.claimRange(101, 1000);
    const [r] = await retireDatasets(c, { version: "v1" }, "superseded by v2");
    assert.deepEqual(r.copiers, [{ copierId: "late-copier", host: hostname(), pid: Deno.pid }]);
    assert.deepEqual(formatRetired(r).slice(1), [
      `  copier late-copier (host ${hostname()}, pid ${Deno.pid}) is still copying into it: it ` +
      `goes on until it stops, and gc keeps what it claims`,
    ]);
    const lines: string[] = [];
    await gcCommand(
      resolveSettings("gc", {
        catalog: target.dsn,
        stateDir: target.stateDir,
        storage: out.path,
        olderThan: "0s",
        apply: true,
        json: true,
      }, () => undefined),
      (l) => lines.push(l),
      () => {},
    );
    const inClaim =
      `inside the claim of copier late-copier (host ${hostname()}, pid ${Deno.pid}) ` +
      `on 101-1000: it may adopt it`;
    assert.deepEqual(
      JSON.parse(lines.join("")).objects.map((o: Record<string, string>) => [
        o.outcome,
        o.key,
        o.reason,
      ]),
      [
        ["deleted", manifestKey(ds("v1"), { start: 1, end: 100 }), null],
        ["deleted", partitionKey(ds("v1"), { start: 1, end: 100 }), null],
        ["kept", manifestKey(ds("v1"), { start: 101, end: 200 }), inClaim],
        ["kept", partitionKey(ds("v1"), { start: 101, end: 200 }), inClaim],
      ],
    );
  } finally {
    await copier.close();
    await c.close();
  }
});
