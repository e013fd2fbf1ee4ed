import assert from "node:assert/strict";
import { zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { dirname } from "node:path";
import { type ObjectStore, openStore } from "../../lib/blob/mod.ts";
import { type Lake, openLake, type RawLedger } from "../../lib/source/lake.ts";
import { objectKey } from "../../lib/source/lake_layout.ts";
import { decodeLedger } from "../../lib/source/ledger.ts";
import type { Network } from "../../lib/source/network.ts";
import { makeLake, type MakeLakeOptions, syntheticLedgers } from "../../scripts/make-lake.ts";
import { SAMPLES, SAMPLES_ABSENT } from "../support/lakes.ts";
import { testTempDir } from "../support/leftovers.ts";

const tempDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of tempDirs) Deno.removeSync(d, { recursive: true });
});
async function tempDir(): Promise<string> {
  const dir = await testTempDir("lake");
  tempDirs.push(dir);
  return dir;
}

async function collect(it: AsyncIterable<RawLedger>): Promise<RawLedger[]> {
  const out: RawLedger[] = [];
  for await (const l of it) out.push(l);
  return out;
}

/** A fresh synthetic lake in a temp dir. */
async function synthLake(
  opts: Partial<MakeLakeOptions> = {},
): Promise<{ dir: string; lake: Lake; network: Network }> {
  const dir = await tempDir();
  const network = opts.network ?? "testnet";
  await makeLake({
    store: openStore(dir),
    network,
    start: 1,
    count: 20,
    lcmVersion: 2,
    ledgerBytes: 1500,
    ...opts,
  });
  return { dir, lake: await openLake(openStore(dir), network), network };
}

Deno.test({
  name: "real lakes: keyFor names the sample objects; both extensions are found",
  ignore: !!SAMPLES_ABSENT,
  fn: async () => {
    const testnet = await openLake(openStore(`${SAMPLES}testnet`), "testnet");
    assert.equal(testnet.keyFor(1410048), "FFEA83FF--1408000-1471999/FFEA7BFF--1410048.xdr.zst");
    const ledgers = await collect(testnet.stream(1410360, 1410367, { prefetch: 3 }));
    assert.deepEqual(ledgers.map((l) => l.sequence), [...Array(8)].map((_, i) => 1410360 + i));
    assert.equal(
      ledgers[0].key,
      `${SAMPLES}testnet/FFEA83FF--1408000-1471999/FFEA7AC7--1410360.xdr.zst`,
    );
    const pubnet = await openLake(openStore(`${SAMPLES}pubnet`), "pubnet");
    const [big] = await collect(pubnet.stream(53312000, 53312000));
    assert.match(big.key, /FCD285FF--53312000\.xdr\.zstd$/);
    assert.equal(decodeLedger(big.xdr).txCount, 163);
  },
});

Deno.test("mixed .zst/.zstd in one lake: every ledger is found, in order", async () => {
  const { dir, lake } = await synthLake({ count: 12, lcmVersion: 1 });
  // Rename every third object to the older extension.
  for (let seq = 1; seq <= 12; seq += 3) {
    const key = objectKey(lake.config, seq, "zst");
    await Deno.rename(`${dir}/${key}`, `${dir}/${key.replace(/\.zst$/, ".zstd")}`);
  }
  const got = await collect(lake.stream(1, 12, { prefetch: 2 }));
  assert.deepEqual(got.map((l) => l.sequence), [...Array(12)].map((_, i) => i + 1));
  assert.ok(got[0].key.endsWith(".xdr.zstd") && got[1].key.endsWith(".xdr.zst"));
});

for (const lcmVersion of [0, 1, 2] as const) {
  for (const [lpb, bpp] of [[1, 64000], [8, 4], [5, 1]]) {
    Deno.test(`synthetic lake v${lcmVersion}, ${lpb} ledgers/batch, ${bpp} batches/partition`, async () => {
      const { dir, lake } = await synthLake({
        lcmVersion,
        start: 3,
        count: 37,
        ledgersPerBatch: lpb,
        batchesPerPartition: bpp,
        seed: 11,
      });
      const expected = [
        ...syntheticLedgers({ start: 3, count: 37, lcmVersion, ledgerBytes: 1500, seed: 11 }),
      ];
      // A sub-range starting and ending mid-batch.
      const got = await collect(lake.stream(6, 33, { prefetch: 3 }));
      assert.deepEqual(got.map((l) => l.sequence), expected.slice(3, 31).map((l) => l.sequence));
      for (const l of got) {
        assert.deepEqual(l.xdr, expected[l.sequence - 3].xdr);
        assert.equal(decodeLedger(l.xdr).ledgerSequence, l.sequence);
        assert.equal(
          l.key,
          `${dir}/${objectKey(lake.config, Math.floor(l.sequence / lpb) * lpb, "zst")}`,
        );
      }
      if (bpp === 1) {
        assert.ok(!got[0].key.slice(dir.length + 1).includes("/"), "no partition folder");
      }
      if (lpb > 1) assert.match(got[0].key, /--\d+-\d+\.xdr\.zst$/);
    });
  }
}

Deno.test("a consumer that stops early leaves no failing prefetch behind", async () => {
  const { dir, lake } = await synthLake({ count: 20 });
  await Deno.remove(`${dir}/${objectKey(lake.config, 15, "zst")}`);
  for await (const l of lake.stream(1, 20, { prefetch: 16 })) if (l.sequence === 3) break;
  // The AbortSignal stops the stream too.
  const ac = new AbortController();
  await assert.rejects(async () => {
    for await (const l of lake.stream(1, 10, { signal: ac.signal })) {
      if (l.sequence === 2) ac.abort();
    }
  }, { name: "AbortError" });
});

// --- every bad input: one line, naming the object and the ledger -----------------------------

Deno.test("missing ledger: neither extension exists", async () => {
  const { dir, lake } = await synthLake({ count: 10 });
  const key = objectKey(lake.config, 7, "zst");
  await Deno.remove(`${dir}/${key}`);
  await assert.rejects(collect(lake.stream(1, 10)), {
    name: "MissingLedgerError",
    message: `ledger 7 is missing from lake ${dir}: neither ${key} nor ${key}d exists`,
  });
});

Deno.test("missing ledger inside a multi-ledger batch", async () => {
  const { dir, lake } = await synthLake({
    start: 10,
    count: 10,
    ledgersPerBatch: 8,
    batchesPerPartition: 1,
  });
  // The lake starts at 10, mid-batch: ledger 9 is not there.
  await assert.rejects(collect(lake.stream(9, 12)), {
    name: "MissingLedgerError",
    message: `ledger 9 is missing from lake ${dir}: ${dir}/FFFFFFF7--8-15.xdr.zst does not hold it`,
  });
});

Deno.test("batch whose sequence disagrees with its key", async () => {
  const { dir, lake } = await synthLake({ count: 10 });
  const k5 = objectKey(lake.config, 5, "zst");
  const k6 = objectKey(lake.config, 6, "zst");
  await Deno.copyFile(`${dir}/${k5}`, `${dir}/${k6}`);
  await assert.rejects(collect(lake.stream(4, 8)), {
    name: "BronzeError",
    message: `${dir}/${k6}: batch holds ledgers 5-5, but its key says 6-6 (ledger 6)`,
  });
});

Deno.test("LedgerCloseMeta whose ledgerSeq disagrees with its batch", async () => {
  const { dir, lake } = await synthLake({ count: 10 });
  const k6 = objectKey(lake.config, 6, "zst");
  // Batch header says 6-6 but carries ledger 5's LedgerCloseMeta.
  const five = zstdDecompressSync(
    await Deno.readFile(`${dir}/${objectKey(lake.config, 5, "zst")}`),
  );
  new DataView(five.buffer, five.byteOffset).setUint32(0, 6);
  new DataView(five.buffer, five.byteOffset).setUint32(4, 6);
  await Deno.writeFile(`${dir}/${k6}`, zstdCompressSync(five));
  await assert.rejects(collect(lake.stream(6, 6)), {
    name: "BronzeError",
    message: `${dir}/${k6}: LedgerCloseMeta #0 has ledgerSeq 5, expected ledger 6`,
  });
});

Deno.test("lake whose passphrase is not the network's", async () => {
  const { dir } = await synthLake({ count: 2, network: "futurenet" });
  await assert.rejects(openLake(openStore(dir), "pubnet"), {
    name: "BronzeError",
    message: `lake ${dir} is for network passphrase "Test SDF Future Network ; October 2022", ` +
      `but pubnet is "Public Global Stellar Network ; September 2015"`,
  });
});

Deno.test("missing or invalid .config.json", async () => {
  const dir = await tempDir();
  await assert.rejects(openLake(openStore(dir), "testnet"), {
    name: "BronzeError",
    message: `${dir}/.config.json: not found (is ${dir} a Galexie data lake?)`,
  });
  await Deno.writeTextFile(`${dir}/.config.json`, "{ nope");
  await assert.rejects(openLake(openStore(dir), "testnet"), {
    message: /^.*\/\.config\.json: not valid JSON \([^\n]*\)$/,
  });
  await Deno.writeTextFile(
    `${dir}/.config.json`,
    JSON.stringify({
      networkPassphrase: "Test SDF Network ; September 2015",
      compression: "zstd",
      ledgersPerBatch: 0,
      batchesPerPartition: 1,
    }),
  );
  await assert.rejects(openLake(openStore(dir), "testnet"), {
    message: `${dir}/.config.json: field ledgersPerBatch must be a positive integer, got 0`,
  });
});

Deno.test("corrupt zstd", async () => {
  const { dir, lake } = await synthLake({ count: 5 });
  const key = objectKey(lake.config, 3, "zst");
  await Deno.writeFile(`${dir}/${key}`, new TextEncoder().encode("definitely not zstd"));
  await assert.rejects(collect(lake.stream(1, 5)), {
    name: "BronzeError",
    message: new RegExp(`^${dir}/${key}: corrupt zstd \\(ledger 3\\): [^\\n]+$`),
  });
});

Deno.test("corrupt XDR: truncated, and a bad union discriminant", async () => {
  const { dir, lake } = await synthLake({ count: 5 });
  const key = objectKey(lake.config, 4, "zst");
  const good = zstdDecompressSync(await Deno.readFile(`${dir}/${key}`));
  await Deno.writeFile(`${dir}/${key}`, zstdCompressSync(good.subarray(0, good.length - 100)));
  await assert.rejects(collect(lake.stream(4, 4)), {
    name: "BronzeError",
    message: new RegExp(`^${dir}/${key}: corrupt XDR \\(ledger 4\\): truncated XDR: [^\\n]+$`),
  });
  const bad = Uint8Array.from(good);
  bad[15] = 7; // LedgerCloseMeta version 7
  await Deno.writeFile(`${dir}/${key}`, zstdCompressSync(bad));
  await assert.rejects(collect(lake.stream(4, 4)), {
    message: `${dir}/${key}: corrupt XDR (ledger 4): unknown LedgerCloseMeta version 7 at byte 12`,
  });
  const trailing = new Uint8Array(good.length + 8);
  trailing.set(good);
  await Deno.writeFile(`${dir}/${key}`, zstdCompressSync(trailing));
  await assert.rejects(collect(lake.stream(4, 4)), {
    message: new RegExp(
      `^${dir}/${key}: corrupt XDR \\(ledger 4\\): 8 trailing byte\\(s\\) at byte \\d+$`,
    ),
  });
});

Deno.test("bad range", async () => {
  const { dir, lake } = await synthLake({ count: 2 });
  await assert.rejects(collect(lake.stream(5, 4)), {
    message: `lake ${dir}: bad ledger range 5-4`,
  });
});

// --- head(): the newest ledger, from the first batch key in list order ------------------------

/** A store that counts what head() asks of it, to show the lake is not listed whole. */
function counting(store: ObjectStore) {
  const counts = { listed: 0, gets: 0 };
  const wrapped: ObjectStore = {
    url: store.url,
    get: (k) => (counts.gets++, store.get(k)),
    getVersioned: (k) => (counts.gets++, store.getVersioned(k)),
    getStream: (k) => (counts.gets++, store.getStream(k)),
    head: (k) => store.head(k),
    putIfAbsent: (k, d) => store.putIfAbsent(k, d),
    putIfVersion: (k, d, v) => store.putIfVersion(k, d, v),
    delete: (k, v) => store.delete(k, v),
    async *list(prefix) {
      for await (const o of store.list(prefix)) {
        counts.listed++;
        yield o;
      }
    },
  };
  return { store: wrapped, counts };
}

for (const [lpb, bpp] of [[1, 64000], [1, 1], [1, 16], [8, 4], [8, 1], [5, 3]]) {
  Deno.test(`head(): mid-partition, mid-batch, ${lpb} ledgers/batch, ${bpp} batches/partition`, async () => {
    // Ledgers 3..102: the last batch and partition are partial, and there are several of each.
    const { dir } = await synthLake({
      start: 3,
      count: 100,
      ledgersPerBatch: lpb,
      batchesPerPartition: bpp,
      lcmVersion: 1,
    });
    const { store, counts } = counting(openStore(dir));
    const lake = await openLake(store, "testnet");
    counts.gets = 0;
    assert.equal(await lake.head(), 102);
    // .config.json, then the newest batch: nothing more is listed, at most its header is read.
    assert.equal(counts.listed, 2);
    // .config.json (checked on every call: a follower asks again and again), then for batches of
    // several ledgers the newest batch's header.
    assert.equal(counts.gets, lpb === 1 ? 1 : 2);
    const [last] = await collect(lake.stream(102, 102));
    assert.equal(last.sequence, 102);
  });
}

Deno.test({
  name: "head(): the real sample lakes",
  ignore: !!SAMPLES_ABSENT,
  fn: async () => {
    const testnet = await openLake(openStore(`${SAMPLES}testnet`), "testnet");
    assert.equal(await testnet.head(), 1410367);
    const pubnet = await openLake(openStore(`${SAMPLES}pubnet`), "pubnet");
    assert.equal(await pubnet.head(), 53312000);
  },
});

Deno.test("head(): other files, an empty newest folder and temp files are passed over", async () => {
  const { dir, lake } = await synthLake({ count: 40, ledgersPerBatch: 4, batchesPerPartition: 2 });
  // Partitions of 8 ledgers: 0-7 .. 40-47; the newest, 40-47, holds ledgers 40.
  await Deno.writeTextFile(`${dir}/.notes`, "x");
  await Deno.writeTextFile(`${dir}/00-README.md`, "x");
  await Deno.mkdir(`${dir}/FFFFFFBF--64-71`); // Galexie's next partition, nothing in it yet
  const newest = dirname(`${dir}/${objectKey(lake.config, 40, "zst")}`);
  await Deno.writeTextFile(`${newest}/0-not-a-batch.txt`, "x");
  await Deno.writeTextFile(`${newest}/.FFFFFFD7--40-43.xdr.zst.tmp-0123456789abcdef`, "x");
  assert.equal(await lake.head(), 40);
});

Deno.test("head(): an empty lake, and a batch key off the lake's grid", async () => {
  const dir = await tempDir();
  await makeLake({ store: openStore(dir), network: "testnet", start: 1, count: 0, lcmVersion: 1 });
  const empty = await openLake(openStore(dir), "testnet");
  await assert.rejects(empty.head(), {
    name: "BronzeError",
    message: `lake ${dir} holds no ledgers`,
  });
  // One ledger per object, in folders of 64000: a flat key does not belong.
  const { dir: d2, lake } = await synthLake({ count: 5 });
  await Deno.writeTextFile(`${d2}/FFFFFFFA--5.xdr.zst`, "x");
  await assert.rejects(lake.head(), {
    name: "BronzeError",
    message: `${d2}/FFFFFFFA--5.xdr.zst does not fit the layout of lake ${d2} ` +
      `(ledgersPerBatch 1, batchesPerPartition 64000)`,
  });
});

Deno.test("head(): a newest batch that is no zstd, or whose header disagrees with its key", async () => {
  const { dir, lake } = await synthLake({ count: 20, ledgersPerBatch: 8, batchesPerPartition: 1 });
  const key = objectKey(lake.config, 16, "zst");
  const good = await Deno.readFile(`${dir}/${key}`);
  await Deno.writeFile(`${dir}/${key}`, new TextEncoder().encode("definitely not zstd"));
  await assert.rejects(lake.head(), {
    name: "BronzeError",
    message: new RegExp(`^${dir}/${key}: corrupt zstd \\(ledger 23\\): [^\\n]+$`),
  });
  const batch = zstdDecompressSync(good);
  new DataView(batch.buffer, batch.byteOffset).setUint32(4, 24);
  await Deno.writeFile(`${dir}/${key}`, zstdCompressSync(batch));
  await assert.rejects(lake.head(), {
    message: `${dir}/${key}: batch holds ledgers 16-24, but its key says 16-23`,
  });
});

Deno.test("head(): gives up after a page of objects that are no batch", async () => {
  const { dir, lake } = await synthLake({ count: 3 });
  // Names that sort before every SEP-54 key ("0" < "F"): 999 of them, plus .config.json.
  for (let i = 0; i < 999; i++) await Deno.writeTextFile(`${dir}/0-junk-${i}`, "");
  await assert.rejects(lake.head(), {
    name: "BronzeError",
    message: `lake ${dir}: no ledger batch among its first 1000 objects`,
  });
  await Deno.remove(`${dir}/0-junk-0`);
  assert.equal(await lake.head(), 3);
});
