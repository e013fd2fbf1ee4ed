/**
 * `bronze status` of a fixed catalog (tests/support/status_catalog.ts): the page `--html` writes
 * is the stored one (its structure and figures: the catalog's name, the times and the style are
 * masked), the text summary and `--json` say the same, and a read-only catalog answers too.
 * BRONZE_UPDATE_EXPECTED=1 rewrites the stored page from this run (review the diff).
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { catalogTarget, poolOf } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { tempDir } from "../support/lakes.ts";
import { fixedCatalog } from "../support/status_catalog.ts";

const EXPECTED = new URL("./expected/status.html", import.meta.url).pathname;

/** The page's structure and figures: one tag per line, without what varies from run to run. */
function structure(html: string, dsn: string): string {
  return html
    .replaceAll(dsn, "CATALOG")
    .replace(/<style>[^]*?<\/style>/, "<style>…</style>")
    .replace(/<time datetime="[^"]*"( title="[^"]*")?>[^<]*<\/time>/g, "<time>…</time>")
    .replace(/></g, ">\n<");
}

Deno.test("bronze status --html of a fixed catalog is the stored page; the text and --json say the same; a read-only catalog answers", async () => {
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  const catalog = await target.open();
  const locker = await poolOf(catalog).connect();
  try {
    await fixedCatalog(poolOf(catalog), locker);
    const file = join(out.path, "status.html");
    const env = { CATALOG_DSN: target.dsn!, STATE_DIR: target.stateDir };
    const r = await runCli(["status", "--html", file], { env });
    assert.equal(r.code, 0, r.stderr);
    const page = structure(await readFile(file, "utf8"), target.dsn!);
    if (Deno.env.get("BRONZE_UPDATE_EXPECTED") === "1") await writeFile(EXPECTED, page);
    assert.equal(page, await readFile(EXPECTED, "utf8"), "the page as stored");
    // No script, nothing fetched: its policy says so, and it has no script element.
    assert.match(
      page,
      /content="default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"/,
    );
    assert.doesNotMatch(page, /<script/);

    const lines = r.stdout.split("\n");
    const at = lines.indexOf("bronze.ledgers_lcm_raw (testnet/default/v1)");
    assert.ok(at > 0, r.stdout);
    assert.deepEqual(lines.slice(at + 2, at + 4), [
      "  cells     15 committed (50.0%), 1 in partials awaiting compaction, 3 claimed now, 11 gaps; 2 superseded partitions awaiting gc",
      // Cells 1-10 committed, 11 partials, 12 compacted, 13-16 gaps, 17-20 committed, 21-23
      // claimed, 24-30 gaps (vm-3's claim is dead).
      "  strip     [##########:#....####///.......]  # committed  : partials  / claimed  . gaps",
    ]);

    const json = JSON.parse((await runCli(["status", "--json"], { env })).stdout);
    const d = json.datasets.find((x: { network: string }) => x.network === "testnet");
    assert.deepEqual(d.totals, {
      committed: 15,
      partials: 1,
      claimed: 3,
      gap: 11,
      superseded: 2,
      partitions: 18,
      ledgers_held: 1630,
      bytes: 1630 * 800,
      last_commit_at: "2026-01-02T03:04:05.000Z",
    });
    assert.equal(json.refresh_seconds, null);
    assert.equal(json.copier, null);

    // A read-only catalog (as a standby is) answers the same.
    const name = new URL(target.dsn!).pathname.slice(1);
    const admin = new pg.Client({ connectionString: target.dsn });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE ${name} SET default_transaction_read_only = on`);
    } finally {
      await admin.end();
    }
    const ro = await runCli(["status", "--html", join(out.path, "ro.html")], { env });
    assert.equal(ro.code, 0, ro.stderr);
    assert.equal(
      structure(await readFile(join(out.path, "ro.html"), "utf8"), target.dsn!),
      page,
    );
  } finally {
    locker.release();
    await catalog.close();
  }
});
