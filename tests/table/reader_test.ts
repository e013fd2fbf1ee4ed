import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { decodeLedger } from "../../lib/source/ledger.ts";
import { fileBuffer, parquetMetadataAsync, rowGroups } from "../../lib/table/reader.ts";
import { PartitionFileWriter } from "../../lib/table/writer.ts";
import { syntheticLedgers } from "../../scripts/make-lake.ts";
import { tempDir } from "../support/lakes.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test("rowGroups reads a multi-group partition one row group at a time, only the columns asked for", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "p.parquet");
  const w = await PartitionFileWriter.create(path, {
    bronzeVersion: "v1",
    eraId: "e",
    network: "testnet",
  }, { rowGroupRows: 25 });
  for (const l of syntheticLedgers({ start: 1, count: 100, lcmVersion: 2, ledgerBytes: 2048 })) {
    await w.write(decodeLedger(l.xdr));
  }
  await w.finish();
  const fh = await open(path, "r");
  try {
    const file = await fileBuffer(fh);
    const metadata = await parquetMetadataAsync(file);
    const groups: number[][] = [];
    for await (
      const g of rowGroups(file, metadata, ["ledger_sequence", "xdr_bytes", "xdr_sha256"])
    ) {
      groups.push([
        g.length,
        Number(g[0].ledger_sequence),
        Number(g[g.length - 1].ledger_sequence),
      ]);
      for (const row of g) {
        assert.equal(sha256(row.xdr_bytes), row.xdr_sha256);
        assert.deepEqual(Object.keys(row), ["ledger_sequence", "xdr_bytes", "xdr_sha256"]);
      }
    }
    assert.deepEqual(groups, [[25, 1, 25], [25, 26, 50], [25, 51, 75], [25, 76, 100]]);
  } finally {
    await fh.close();
  }
});
