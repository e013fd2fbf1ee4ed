/**
 * A copy from a Stellar RPC node equals a copy from the lake, byte for byte: the real testnet
 * ledgers served by a JSON-RPC server of the tests' own (tests/support/rpc_server.ts). Lineage
 * says where each came from: `live` for RPC, `archive` for a lake. A node that answers 503 for a
 * while is retried; one older than its window is a one-line error naming both ledgers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CatalogTarget, catalogTarget, poolOf } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { copyEnv, lineageRows } from "../support/copy.ts";
import { SAMPLES, SAMPLES_ABSENT, tempDir } from "../support/lakes.ts";
import { startRpcServer } from "../support/rpc_server.ts";

interface Lineage {
  ledger_start: number;
  checksum: string;
  storage_path: string;
  source_type: string;
  source_location: string;
}

const FROM = 1410048;
const TO = 1410367;

Deno.test({
  name:
    "copy from RPC equals copy from the lake: same checksums, same bytes; source_type live vs archive; 503s are retried",
  ignore: !!SAMPLES_ABSENT,
}, async () => {
  const lake = join(SAMPLES, "testnet");
  const rpc = await startRpcServer({ lake, network: "testnet", from: FROM, to: TO });
  try {
    rpc.fail({ kind: "status", status: 503, method: "getLedgers", times: 2 });
    const copies: {
      target: CatalogTarget;
      out: { path: string; [Symbol.asyncDispose](): Promise<void> };
      rows: Lineage[];
    }[] = [];
    for (const source of [lake, rpc.url]) {
      const target = await catalogTarget("postgres");
      const out = await tempDir();
      const r = await runCli(["copy"], {
        env: {
          ...copyEnv(target, source, out.path),
          LEDGER_START: String(FROM),
          LEDGER_END: String(TO),
          PARTITION_SIZE: "100",
        },
      });
      assert.equal(r.code, 0, r.stderr);
      const c = await target.open();
      const { rows } = await poolOf(c).query<Lineage>(
        "SELECT ledger_start, checksum, storage_path, source_type, source_location FROM _meta_lineage ORDER BY 1",
      );
      await c.close();
      copies.push({ target, out, rows });
    }
    const [fromLake, fromRpc] = copies;
    assert.deepEqual(
      fromRpc.rows.map((r) => [r.ledger_start, r.checksum]),
      fromLake.rows.map((r) => [r.ledger_start, r.checksum]),
    );
    for (const [i, r] of fromRpc.rows.entries()) {
      const a = await Deno.readFile(join(fromLake.out.path, fromLake.rows[i].storage_path));
      const b = await Deno.readFile(join(fromRpc.out.path, r.storage_path));
      assert.deepEqual(a, b, r.storage_path);
    }
    assert.deepEqual(new Set(fromLake.rows.map((r) => r.source_type)), new Set(["archive"]));
    assert.deepEqual(new Set(fromRpc.rows.map((r) => r.source_type)), new Set(["live"]));
    assert.equal(fromRpc.rows[0].source_location, rpc.url.replace(/\/$/, "/"));
    assert.ok(rpc.calls.some((c) => c.status === 503), "the 503s happened and were retried");
    for (const c of copies) {
      await c.target[Symbol.asyncDispose]();
      await c.out[Symbol.asyncDispose]();
    }
  } finally {
    await rpc.stop();
  }
});

Deno.test({
  name:
    "RPC: a ledger older than the node's window is one line naming both ledgers; --end latest is the node's latest",
  ignore: !!SAMPLES_ABSENT,
}, async () => {
  const rpc = await startRpcServer({
    lake: join(SAMPLES, "testnet"),
    network: "testnet",
    from: FROM,
    to: TO,
    oldest: 1410200,
    latest: 1410250,
  });
  await using target = await catalogTarget("postgres");
  await using out = await tempDir();
  try {
    const env = { ...copyEnv(target, rpc.url, out.path), PARTITION_SIZE: "100" };
    const old = await runCli(["copy", "--start", String(FROM), "--end", "1410250"], { env });
    assert.equal(old.code, 1, old.stderr);
    assert.match(
      old.stderr,
      /^bronze: .*ledger 1410048 is older than the oldest ledger 1410200 .*\n$/m,
    );
    const latest = await runCli(["copy", "--start", "1410200", "--end", "latest"], { env });
    assert.equal(latest.code, 0, latest.stderr);
    assert.match(
      latest.stderr,
      /--end latest: the newest ledger of rpc\+http:\/\/127\.0\.0\.1:\d+\/ is 1410250\n/,
    );
    assert.deepEqual(
      (await lineageRows(target)).map((r) => `${r.ledger_start}-${r.ledger_end}`),
      ["1410200-1410200", "1410201-1410250"],
    );
  } finally {
    await rpc.stop();
  }
});
