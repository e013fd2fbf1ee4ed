/**
 * lib/verify/locate.ts: where a lineage row's file is, for verify and repair: under --storage when
 * given (the bucket was copied elsewhere), else at its storage_uri; one store per root.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { toStoreUrl } from "../../lib/blob/mod.ts";
import { Stores } from "../../lib/verify/locate.ts";
import { tempDir } from "../support/lakes.ts";

const KEY = "testnet/p23/v1/ledgers_lcm_raw/range=1-64/part-1-64.parquet";
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("Stores.locate: a row's file at its storage_uri, the root being the URI without its storage_path", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  const stores = new Stores(undefined);
  try {
    for (const [root, text] of [[a.path, "in a"], [b.path, "in b"]]) {
      const { store, key } = stores.locate({ storagePath: KEY, storageUri: join(root, KEY) });
      assert.equal(key, KEY);
      assert.equal(store.url, root);
      await store.putIfAbsent(key, enc(text));
    }
    // Each root's own store, opened once: a second row of root a is read through the same one.
    const first = stores.locate({ storagePath: KEY, storageUri: join(a.path, KEY) });
    const again = stores.locate({ storagePath: KEY, storageUri: join(a.path, KEY) });
    assert.equal(again.store, first.store);
    assert.equal(dec(await first.store.get(KEY)), "in a");
    const other = stores.locate({ storagePath: KEY, storageUri: `file://${join(b.path, KEY)}` });
    assert.equal(dec(await other.store.get(other.key)), "in b");
  } finally {
    await stores.close();
  }
});

Deno.test("Stores.locate: with a storage root, every row is read under it at its storage_path, whatever its URI says", async () => {
  await using moved = await tempDir();
  const stores = new Stores(toStoreUrl(moved.path));
  try {
    const gone = { storagePath: KEY, storageUri: `s3://old-bucket/lake/${KEY}` };
    const { store, key } = stores.locate(gone);
    assert.equal(key, KEY);
    assert.equal(store.url, moved.path);
    await store.putIfAbsent(key, enc("copied here"));
    assert.equal(dec(await store.get(KEY)), "copied here");
  } finally {
    await stores.close();
  }
});

Deno.test("Stores.locate: a URI that does not end with its storage_path is split at its last slash", () => {
  const stores = new Stores(undefined);
  const { store, key } = stores.locate({
    storagePath: KEY,
    storageUri: "/srv/elsewhere/part-1-64.parquet",
  });
  assert.equal(key, "part-1-64.parquet");
  assert.equal(store.url, "/srv/elsewhere");
});
