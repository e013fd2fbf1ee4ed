/**
 * One conformance suite for every ObjectStore backend: the local file store, s3:// against s3rver
 * and gs:// against firebase-tools' Cloud Storage emulator. Write preconditions (put-if-absent
 * refusing, stale versions rejected on replace and delete, concurrent writers under one version)
 * are tested against the file store and, for s3:// and gs://, against
 * tests/support/precondition_server.ts, because neither emulator enforces them: s3rver ignores
 * If-None-Match and If-Match (on PUT and on DELETE), the GCS emulator ignores ifGenerationMatch
 * (on upload and on delete). Both emulators delete, and report LastModified / timeCreated.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { BronzeError } from "../../lib/runtime/errors.ts";
import { FileStore } from "../../lib/blob/file.ts";
import { gcsOptionsFromEnv, GcsStore } from "../../lib/blob/gcs.ts";
import { type BucketUrl, joinKey, openStore, redactUrl, toStoreUrl } from "../../lib/blob/mod.ts";
import { s3OptionsFromEnv, S3Store } from "../../lib/blob/s3.ts";
import { NotFoundError, type ObjectStore, PreconditionFailedError } from "../../lib/blob/store.ts";
import { RetryingStore } from "../../lib/blob/retrying.ts";
import { Retrier } from "../../lib/runtime/retry.ts";
import { startPreconditionServer } from "../support/precondition_server.ts";
import { startGcsEmulator, startS3rver, withEnv } from "../support/servers.ts";
import { until } from "../support/wait.ts";
import { testTempDir } from "../support/leftovers.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const TEMP_KEY = /(^|\/)\.[^/]+\.tmp-[0-9a-f]{16}$/;
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** How a backend names an object in its errors. */
type Named = ObjectStore & { objectUrl(key: string): string };

function fileStore(root: string): Named & FileStore {
  const store = new FileStore(root);
  return Object.assign(store, { objectUrl: (key: string) => store.path(key) });
}

/** A bucket URL, parsed as the settings parse --storage. */
const bucket = (url: string) => toStoreUrl(url) as BucketUrl;

function s3Store(endpoint: string, url = "s3://bronze-test/run") {
  return new S3Store(
    bucket(url),
    s3OptionsFromEnv({
      AWS_ENDPOINT_URL_S3: endpoint,
      S3_FORCE_PATH_STYLE: "true",
      AWS_ACCESS_KEY_ID: "S3RVER", // s3rver's own; neither server checks signatures
      AWS_SECRET_ACCESS_KEY: "S3RVER",
    }),
  );
}

function gcsStore(host: string, url = "gs://bronze-test/run") {
  return new GcsStore(bucket(url), gcsOptionsFromEnv({ STORAGE_EMULATOR_HOST: host }));
}

/** A backend as openStore hands it out: behind the retrying layer (retrying.ts). */
function retrying(store: Named): Named {
  const wrapped = new RetryingStore(store, new Retrier(), "storage");
  return Object.assign(wrapped, { objectUrl: (key: string) => store.objectUrl(key) });
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function listKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  return (await Array.fromAsync(store.list(prefix))).map((o) => o.key);
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A file of `size` pseudo-random bytes (incompressible, so nothing can cheat on content). */
async function bigFile(dir: string, size: number): Promise<string> {
  const path = `${dir}/big.bin`;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  await Deno.writeFile(path, data);
  return path;
}

/**
 * Asserts `modified` is the time of a write made between `before` and `after` (Date.now() values).
 * The slack is for stores that keep whole seconds (S3, the file store's ctime) and for coarse
 * filesystem clocks; a store reporting another time (epoch, an old mtime) is far outside it.
 */
/**
 * How many processes wait, blocked, for a flock on the file of inode `ino` (Linux /proc/locks: a
 * waiter's line reads "N: -> FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> 0 EOF").
 */
async function flockWaiters(ino: number | null): Promise<number> {
  const locks = await Deno.readTextFile("/proc/locks");
  return locks.split("\n").filter((l) => / -> FLOCK /.test(l) && l.includes(`:${ino} `)).length;
}

function assertWrittenBetween(modified: Date, before: number, after: number) {
  assert.ok(modified instanceof Date && !Number.isNaN(modified.getTime()), `${modified}`);
  const ms = modified.getTime();
  assert.ok(
    ms >= before - 2000 && ms <= after + 2000,
    `modified ${modified.toISOString()} is not the time of a write made between ` +
      `${new Date(before).toISOString()} and ${new Date(after).toISOString()}`,
  );
}

/** Everything an emulator can check: reads, writes that create, listing, streaming, misses. */
async function conformance(t: Deno.TestContext, store: Named) {
  await t.step("putIfAbsent creates; get, getVersioned, getStream, head agree", async () => {
    const before = Date.now();
    assert.equal(await store.putIfAbsent("a/one.txt", enc("one")), "created");
    const after = Date.now();
    assert.equal(dec(await store.get("a/one.txt")), "one");
    const versioned = await store.getVersioned("a/one.txt");
    assert.equal(dec(versioned!.data), "one");
    const head = await store.head("a/one.txt");
    assert.deepEqual(head, {
      key: "a/one.txt",
      size: 3,
      version: versioned!.version,
      modified: head!.modified,
    });
    assert.notEqual(head!.version, "");
    assertWrittenBetween(head!.modified, before, after);
    assert.equal(dec(await readAll(await store.getStream("a/one.txt"))), "one");
  });

  await t.step("list and head report the same modified time", async () => {
    const [listed] = await Array.fromAsync(store.list("a/one.txt"));
    assert.deepEqual(listed, await store.head("a/one.txt"));
    assert.ok(listed.modified instanceof Date);
  });

  await t.step("putIfVersion from a 12 MB { file } replaces; the new bytes read back", async () => {
    const dir = await testTempDir();
    try {
      // Above gcs.ts's 8 MiB threshold, so GCS takes the resumable path.
      const path = await bigFile(dir, 12 << 20);
      const want = sha256(await Deno.readFile(path));
      const v1 = await store.putIfVersion("r/part.parquet", enc("corrupt"), null);
      const before = Date.now();
      const v2 = await store.putIfVersion("r/part.parquet", { file: path }, v1);
      const after = Date.now();
      assert.notEqual(v2, v1);
      await Deno.remove(path); // the caller may drop its file once the object is in place
      const head = await store.head("r/part.parquet");
      assert.equal(head!.version, v2);
      assert.equal(head!.size, 12 << 20);
      assertWrittenBetween(head!.modified, before, after);
      assert.equal(sha256(await readAll(await store.getStream("r/part.parquet"))), want);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step(
    "delete removes, with or without a version; a missing object is success",
    async () => {
      await store.putIfAbsent("d/plain", enc("x"));
      await store.delete("d/plain");
      assert.equal(await store.head("d/plain"), null);

      await store.putIfAbsent("d/versioned", enc("y"));
      const { version } = (await store.head("d/versioned"))!;
      await store.delete("d/versioned", version);
      assert.equal(await store.head("d/versioned"), null);
      await assert.rejects(store.get("d/versioned"), NotFoundError);

      // Gone already (gc listed it, someone else removed it): what the caller wanted is true.
      await store.delete("d/versioned", version);
      await store.delete("d/versioned");
      await store.delete("d/never-there");
      assert.deepEqual(await listKeys(store, "d/"), []);
    },
  );

  await t.step("missing objects: NotFoundError naming the object, or null", async () => {
    const url = store.objectUrl("a/missing.txt");
    await assert.rejects(store.get("a/missing.txt"), (e) => {
      assert.ok(e instanceof NotFoundError && e instanceof BronzeError);
      assert.equal(e.message, `object not found: ${url}`);
      return true;
    });
    await assert.rejects(store.getStream("a/missing.txt"), NotFoundError);
    assert.equal(await store.head("a/missing.txt"), null);
    assert.equal(await store.getVersioned("a/missing.txt"), null);
  });

  await t.step("a 20 MB { file } upload is streamed and round-trips byte-exact", async () => {
    const dir = await testTempDir();
    try {
      const path = await bigFile(dir, 20 << 20);
      const want = sha256(await Deno.readFile(path));
      assert.equal(await store.putIfAbsent("big/part.parquet", { file: path }), "created");
      assert.equal((await store.head("big/part.parquet"))!.size, 20 << 20);
      assert.equal(sha256(await readAll(await store.getStream("big/part.parquet"))), want);
      assert.equal(sha256(await store.get("big/part.parquet")), want);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("keys that could escape the root are refused", async () => {
    for (const key of ["../x", "/abs", "a//b", "a/./b", ""]) {
      await assert.rejects(store.get(key), (e) => {
        assert.ok(e instanceof BronzeError);
        assert.equal(
          e.message,
          `invalid object key ${JSON.stringify(key)} in ${store.url}: keys are relative, ` +
            `'/'-separated, with no empty, "." or ".." segments`,
        );
        return true;
      });
    }
  });
}

/**
 * Listing. `ordered` is false for s3rver, which returns keys in its own folder-walk order
 * ("l/a/x" before "l/a-b/x"), not S3's byte order; there only membership is checked.
 */
async function listing(t: Deno.TestContext, store: Named, ordered = true) {
  await t.step(`list: ${ordered ? "lexicographic, " : ""}prefix may end mid-name`, async () => {
    // Written out of order; '-' < '/' < '0' catches a naive per-folder walk.
    for (const key of ["l/b/c/d", "l/ab", "l/a0", "l/a/x", "l/a-b/x", "l/.config.json"]) {
      assert.equal(await store.putIfAbsent(key, enc(key)), "created");
    }
    const check = async (prefix: string, want: string[]) => {
      const got = await listKeys(store, prefix);
      assert.deepEqual(ordered ? got : got.toSorted(), want, `list(${JSON.stringify(prefix)})`);
    };
    const all = ["l/.config.json", "l/a-b/x", "l/a/x", "l/a0", "l/ab", "l/b/c/d"];
    await check("l/", all);
    await check("l", all);
    await check("l/a", ["l/a-b/x", "l/a/x", "l/a0", "l/ab"]);
    await check("l/a/", ["l/a/x"]);
    await check("l/b/c/d", ["l/b/c/d"]);
    await check("nothing/", []);
    // Every field, modified included, as head reports it.
    for await (const info of store.list("l/")) assert.deepEqual(await store.head(info.key), info);
    assert.ok((await listKeys(store, "")).includes("l/ab"));
  });
}

/** Write preconditions: only meaningful where the server enforces them. */
async function preconditions(t: Deno.TestContext, store: Named) {
  await t.step("putIfAbsent refuses an existing key and keeps the original bytes", async () => {
    assert.equal(await store.putIfAbsent("p/part", enc("original")), "created");
    assert.equal(await store.putIfAbsent("p/part", enc("impostor")), "exists");
    const dir = await testTempDir();
    try {
      await Deno.writeFile(`${dir}/f`, enc("from a file"));
      assert.equal(await store.putIfAbsent("p/part", { file: `${dir}/f` }), "exists");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    assert.equal(dec(await store.get("p/part")), "original");
  });

  await t.step("putIfVersion: current version wins, stale version is refused", async () => {
    const v1 = await store.putIfVersion("p/checkpoint.json", enc("v1"), null);
    assert.equal((await store.head("p/checkpoint.json"))!.version, v1);
    const url = store.objectUrl("p/checkpoint.json");
    await assert.rejects(store.putIfVersion("p/checkpoint.json", enc("again"), null), (e) => {
      assert.ok(e instanceof PreconditionFailedError);
      assert.equal(e.message, `${url} was changed by another writer (precondition failed)`);
      return true;
    });

    const v2 = await store.putIfVersion("p/checkpoint.json", enc("v2"), v1);
    assert.notEqual(v2, v1);
    assert.deepEqual(await store.getVersioned("p/checkpoint.json"), {
      data: enc("v2"),
      version: v2,
    });
    await assert.rejects(
      store.putIfVersion("p/checkpoint.json", enc("stale"), v1),
      PreconditionFailedError,
    );
    assert.equal(dec(await store.get("p/checkpoint.json")), "v2");
    const v3 = await store.putIfVersion("p/checkpoint.json", enc("v3"), v2);
    assert.equal((await store.getVersioned("p/checkpoint.json"))!.version, v3);
  });

  await t.step(
    "putIfVersion from a { file }: a stale version is refused and the object untouched",
    async () => {
      const dir = await testTempDir();
      try {
        const small = `${dir}/small`;
        await Deno.writeFile(small, enc("rebuilt"));
        const big = await bigFile(dir, 12 << 20); // GCS: resumable, checked when it completes
        const v1 = await store.putIfVersion("p/repaired", enc("first"), null);
        const v2 = await store.putIfVersion("p/repaired", enc("second"), v1);
        const url = store.objectUrl("p/repaired");
        for (const file of [small, big]) {
          await assert.rejects(store.putIfVersion("p/repaired", { file }, v1), (e) => {
            assert.ok(e instanceof PreconditionFailedError);
            assert.equal(e.message, `${url} was changed by another writer (precondition failed)`);
            return true;
          });
          await assert.rejects(
            store.putIfVersion("p/repaired", { file }, null),
            PreconditionFailedError,
          );
        }
        assert.deepEqual(await store.getVersioned("p/repaired"), {
          data: enc("second"),
          version: v2,
        });

        // An absent object has no version to match.
        await assert.rejects(
          store.putIfVersion("p/absent", { file: small }, v2),
          PreconditionFailedError,
        );
        assert.equal(await store.head("p/absent"), null);

        // The current version goes through, both ways (GCS: the resumable one for the big file).
        const v3 = await store.putIfVersion("p/repaired", { file: big }, v2);
        assert.equal((await store.head("p/repaired"))!.version, v3);
        assert.equal(
          sha256(await readAll(await store.getStream("p/repaired"))),
          sha256(await Deno.readFile(big)),
        );
        const v4 = await store.putIfVersion("p/repaired", { file: small }, v3);
        assert.deepEqual(await store.getVersioned("p/repaired"), {
          data: enc("rebuilt"),
          version: v4,
        });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );

  await t.step("delete under a stale version: refused, the object stays", async () => {
    const v1 = await store.putIfVersion("p/orphan", enc("listed"), null);
    const v2 = await store.putIfVersion("p/orphan", enc("rewritten since"), v1);
    const url = store.objectUrl("p/orphan");
    await assert.rejects(store.delete("p/orphan", v1), (e) => {
      assert.ok(e instanceof PreconditionFailedError);
      assert.equal(e.message, `${url} was changed by another writer (precondition failed)`);
      return true;
    });
    assert.deepEqual(await store.getVersioned("p/orphan"), {
      data: enc("rewritten since"),
      version: v2,
    });
    // An empty token (an ETag a server left out) matches nothing, absence included (GCS would
    // read it as generation 0, "only if absent").
    await assert.rejects(store.delete("p/orphan", ""), PreconditionFailedError);
    await assert.rejects(store.putIfVersion("p/orphan", enc("x"), ""), PreconditionFailedError);
    await assert.rejects(store.putIfVersion("p/never", enc("x"), ""), PreconditionFailedError);
    assert.equal(await store.head("p/never"), null);
    assert.equal(dec(await store.get("p/orphan")), "rewritten since");
    await store.delete("p/orphan", v2);
    assert.equal(await store.head("p/orphan"), null);
  });

  await t.step("concurrent replacements under one version: exactly one wins", async () => {
    const v1 = await store.putIfVersion("p/race", enc("original"), null);
    const writers = Array.from({ length: 6 }, (_, i) => `repair ${i}`);
    const results = await Promise.allSettled(
      writers.map((w) => store.putIfVersion("p/race", enc(w), v1)),
    );
    const won = results.flatMap((r, i) => r.status === "fulfilled" ? [{ i, v: r.value }] : []);
    assert.equal(won.length, 1, `winners: ${won.map((w) => writers[w.i])}`);
    for (const r of results) {
      if (r.status === "rejected") assert.ok(r.reason instanceof PreconditionFailedError);
    }
    assert.deepEqual(await store.getVersioned("p/race"), {
      data: enc(writers[won[0].i]),
      version: won[0].v,
    });
  });

  await t.step("a delete racing replacements under one version: exactly one wins", async () => {
    const v1 = await store.putIfVersion("p/race2", enc("original"), null);
    const results = await Promise.allSettled([
      store.delete("p/race2", v1),
      store.putIfVersion("p/race2", enc("a"), v1),
      store.putIfVersion("p/race2", enc("b"), v1),
    ]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) {
      if (r.status === "rejected") assert.ok(r.reason instanceof PreconditionFailedError);
    }
    const now = await store.getVersioned("p/race2");
    if (results[0].status === "fulfilled") assert.equal(now, null);
    else assert.equal(dec(now!.data), results[1].status === "fulfilled" ? "a" : "b");
  });
}

Deno.test("file store: conformance and preconditions", async (t) => {
  const root = await testTempDir();
  try {
    const store = fileStore(`${root}/lake`);
    await conformance(t, store);
    await listing(t, store);
    await preconditions(t, store);
    await t.step("the same behind the retrying layer", async (t) => {
      const wrapped = retrying(fileStore(`${root}/wrapped`));
      await conformance(t, wrapped);
      await listing(t, wrapped);
      await preconditions(t, wrapped);
    });

    await t.step("file:// URLs and relative paths resolve to the same objects", async () => {
      assert.equal(dec(await openStore(`file://${root}/lake`).get("a/one.txt")), "one");
      assert.equal(openStore(`file://${root}/lake`).url, `file://${root}/lake`);
      assert.equal(openStore("rel/dir").localRoot, `${Deno.cwd()}/rel/dir`);
      assert.equal(openStore("rel/dir").url, `${Deno.cwd()}/rel/dir`);
    });

    await t.step("a failed write leaves no temp file behind", async () => {
      await assert.rejects(store.putIfAbsent("t/x", { file: `${root}/no-such-file` }));
      assert.deepEqual([...Deno.readDirSync(`${root}/lake/t`)], []);
      const leftovers: string[] = [];
      const walk = (dir: string) => {
        for (const e of Deno.readDirSync(dir)) {
          if (e.isDirectory) walk(`${dir}/${e.name}`);
          else if (e.name.includes(".tmp-")) leftovers.push(`${dir}/${e.name}`);
        }
      };
      walk(root);
      assert.deepEqual(leftovers, []);
    });

    await t.step("a temp file left by a crash is not listed", async () => {
      await Deno.writeFile(`${root}/lake/l/.ab.tmp-0123456789abcdef`, enc("partial"));
      assert.deepEqual(await listKeys(store, "l/a"), ["l/a-b/x", "l/a/x", "l/a0", "l/ab"]);
    });

    await t.step(
      "listTemp finds left-behind temp files with their time; delete removes one",
      async () => {
        const before = Date.now();
        await Deno.mkdir(`${root}/lake/l/b/deep`, { recursive: true });
        await Deno.writeFile(`${root}/lake/l/b/deep/.part.tmp-fedcba9876543210`, enc("half"));
        const after = Date.now();
        await Deno.writeFile(`${root}/lake/l/.not-a-temp.tmp-xyz`, enc("an object")); // no 16 hex
        const temps = await Array.fromAsync(store.listTemp!("l/"));
        assert.deepEqual(temps.map((o) => [o.key, o.size]), [
          ["l/.ab.tmp-0123456789abcdef", 7],
          ["l/b/deep/.part.tmp-fedcba9876543210", 4],
        ]);
        assertWrittenBetween(temps[1].modified, before, after);
        assert.deepEqual(
          (await Array.fromAsync(store.listTemp!("l/b/"))).map((o) => o.key),
          ["l/b/deep/.part.tmp-fedcba9876543210"],
        );
        assert.ok((await listKeys(store, "l/")).includes("l/.not-a-temp.tmp-xyz"));
        assert.ok(!(await listKeys(store, "l/")).some((k) => TEMP_KEY.test(k)));

        await store.delete(temps[1].key, temps[1].version);
        assert.deepEqual(
          (await Array.fromAsync(store.listTemp!("l/"))).map((o) => o.key),
          ["l/.ab.tmp-0123456789abcdef"],
        );
        await store.delete(temps[0].key, temps[0].version);
        await store.delete("l/.not-a-temp.tmp-xyz");
        assert.deepEqual(await Array.fromAsync(store.listTemp!("")), []);
      },
    );

    await t.step("modified is when a file was published, not its old mtime", async () => {
      const old = new Date("2001-01-01T00:00:00Z");
      const built = `${root}/built.parquet`;
      await Deno.writeFile(built, enc("built long ago"));
      await Deno.utime(built, old, old);
      const before = Date.now();
      assert.equal(await store.putIfAbsent("m/part", { file: built }), "created");
      const v = await store.putIfVersion("m/replaced", enc("x"), null);
      await store.putIfVersion("m/replaced", { file: built }, v); // linked, mtime 2001
      const after = Date.now();
      for (const key of ["m/part", "m/replaced"]) {
        assert.equal((await Deno.stat(store.path(key))).mtime?.getTime(), old.getTime());
        assertWrittenBetween((await store.head(key))!.modified, before, after);
      }
      assert.equal(dec(await store.get("m/replaced")), "built long ago");
    });

    await t.step("delete never removes a folder", async () => {
      await store.delete("l/b/deep");
      await store.delete("l/b/deep", "1-2-3");
      assert.ok((await Deno.stat(`${root}/lake/l/b/deep`)).isDirectory);
    });

    // The CAS holds the object's flock from its compare to its rename/unlink. Here the test holds
    // that lock, as a concurrent repair would, waits until the kernel shows the writer blocked on
    // it (/proc/locks), and replaces the object while holding it: the waiting writer must then see
    // the new version and fail. An implementation that compares without the lock never shows up
    // there, and the wait says so.
    for (const op of ["putIfVersion", "delete"] as const) {
      await t.step(`${op} waits for the lock, then compares with what is there`, async () => {
        const key = `lock/${op}`;
        const v1 = await store.putIfVersion(key, enc("v1"), null);
        const held = await Deno.open(store.path(key), { read: true, write: true });
        let pending: Promise<unknown>;
        try {
          await held.lock(true);
          pending = op === "delete"
            ? store.delete(key, v1)
            : store.putIfVersion(key, enc("late"), v1);
          pending.catch(() => {}); // settled below
          const { ino } = await Deno.stat(store.path(key));
          await until(
            async () => (await flockWaiters(ino)) > 0,
            `${op} blocking on the lock of the object it compares`,
          );
          // What the lock holder installs, the way FileStore itself would: temp, then rename.
          const temp = `${root}/lake/lock/.${op}.tmp-00000000000000ff`;
          await Deno.writeFile(temp, enc("v2"));
          await Deno.rename(temp, store.path(key));
        } finally {
          held.close();
        }
        await assert.rejects(pending, PreconditionFailedError);
        assert.equal(dec(await store.get(key)), "v2");
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "s3 store against s3rver: conformance",
  async fn(t) {
    const server = await startS3rver(["bronze-test"]);
    const store = s3Store(server.endpoint);
    try {
      await conformance(t, store);
      await listing(t, store, false);
      await t.step("the same behind the retrying layer", async (t) => {
        const wrapped = retrying(s3Store(server.endpoint, "s3://bronze-test/wrapped"));
        await conformance(t, wrapped);
        await listing(t, wrapped, false);
      });

      await t.step("list pages through more than 1000 keys", async () => {
        const keys = Array.from({ length: 1005 }, (_, i) => `many/${String(i).padStart(4, "0")}`);
        for (let i = 0; i < keys.length; i += 50) {
          await Promise.all(keys.slice(i, i + 50).map((k) => store.putIfAbsent(k, enc(k))));
        }
        assert.deepEqual(await listKeys(store, "many/"), keys);
      });

      await t.step("other errors name the s3:// URL", async () => {
        const missing = s3Store(server.endpoint, "s3://no-such-bucket/x");
        try {
          await assert.rejects(missing.get("k"), (e) => {
            assert.ok(e instanceof BronzeError && !(e instanceof NotFoundError));
            assert.match(
              e.message,
              /^s3 GetObject s3:\/\/no-such-bucket\/x\/k failed: NoSuchBucket/,
            );
            return true;
          });
        } finally {
          await missing.close();
        }
      });
    } finally {
      await store.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "gs store against the firebase-tools storage emulator: conformance",
  async fn(t) {
    const server = await startGcsEmulator();
    try {
      await conformance(t, gcsStore(server.host));
      await listing(t, gcsStore(server.host));
      await t.step("the same behind the retrying layer", async (t) => {
        const wrapped = retrying(gcsStore(server.host, "gs://bronze-test/wrapped"));
        await conformance(t, wrapped);
        await listing(t, wrapped);
      });
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  // Our precondition server, not an emulator: s3rver ignores If-None-Match / If-Match.
  name: "s3 store preconditions (against tests/support/precondition_server.ts)",
  async fn(t) {
    const server = await startPreconditionServer();
    const store = s3Store(server.endpoint);
    try {
      await preconditions(t, store);
      await listing(t, store);
    } finally {
      await store.close();
      await server.stop();
    }
  },
});

Deno.test({
  // Our precondition server, not an emulator: the GCS emulator ignores ifGenerationMatch.
  name: "gs store preconditions (against tests/support/precondition_server.ts)",
  async fn(t) {
    const server = await startPreconditionServer();
    try {
      await preconditions(t, gcsStore(server.endpoint));
      await listing(t, gcsStore(server.endpoint));
    } finally {
      await server.stop();
    }
  },
});

Deno.test("a gs store talks to the endpoint it was given, whatever STORAGE_EMULATOR_HOST says when it starts", async () => {
  // The GCS library lets the process's variable win over its apiEndpoint; under --parallel another
  // test file may have it set (to its own emulator) at the moment this store makes its client.
  const server = await startPreconditionServer();
  try {
    const store = gcsStore(server.endpoint, "gs://bronze-test/env");
    await withEnv({ STORAGE_EMULATOR_HOST: "http://127.0.0.1:9" }, async () => {
      assert.equal(await store.putIfAbsent("k", enc("v")), "created");
      assert.deepEqual(await listKeys(store, ""), ["k"]);
    });
  } finally {
    await server.stop();
  }
});

Deno.test("openStore dispatches on the scheme and refuses others", () => {
  // Every store wears the retrying layer; the backend is inside.
  const inner = (s: ObjectStore) => (s as RetryingStore).inner;
  assert.ok(inner(openStore("/tmp/lake")) instanceof FileStore);
  assert.ok(inner(openStore("file:///tmp/lake")) instanceof FileStore);
  assert.ok(inner(openStore("./data")) instanceof FileStore);
  assert.equal(openStore("./data").localRoot, `${Deno.cwd()}/data`);
  const gs = inner(openStore("gs://bucket/some/prefix/"));
  assert.ok(gs instanceof GcsStore);
  assert.equal(gs.url, "gs://bucket/some/prefix");
  assert.equal(gs.prefix, "some/prefix/");
  const s3 = inner(openStore("s3://bucket"));
  assert.ok(s3 instanceof S3Store);
  assert.equal(s3.objectUrl("a/b"), "s3://bucket/a/b");
  assert.equal(openStore("s3://bucket").localRoot, undefined);
  for (const url of ["http://example.com/x", "az://c/x"]) {
    assert.throws(() => openStore(url), {
      name: "BronzeError",
      message:
        `storage must be a local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix], got "${url}"`,
    });
  }
  assert.throws(() => openStore(""), { message: "storage must not be empty" });
  assert.throws(() => openStore("s3://"), {
    message: 'storage names no bucket: "s3://" (expected s3://bucket[/prefix])',
  });
});

Deno.test("environment configuration and helpers", () => {
  assert.deepEqual(s3OptionsFromEnv({}), {
    endpoint: undefined,
    region: "us-east-1",
    forcePathStyle: false,
  });
  assert.deepEqual(
    s3OptionsFromEnv({
      AWS_ENDPOINT_URL: "http://generic",
      AWS_ENDPOINT_URL_S3: "https://s3.example",
      AWS_REGION: "auto",
      S3_FORCE_PATH_STYLE: "1",
      AWS_ACCESS_KEY_ID: "id",
      AWS_SECRET_ACCESS_KEY: "secret",
    }),
    {
      endpoint: "https://s3.example",
      region: "auto",
      forcePathStyle: true,
      credentials: { accessKeyId: "id", secretAccessKey: "secret" },
    },
  );
  assert.equal(s3OptionsFromEnv({ AWS_ENDPOINT_URL: "http://generic" }).endpoint, "http://generic");
  assert.deepEqual(gcsOptionsFromEnv({}), { apiEndpoint: undefined, projectId: undefined });
  assert.deepEqual(gcsOptionsFromEnv({ STORAGE_EMULATOR_HOST: "http://127.0.0.1:9" }), {
    apiEndpoint: "http://127.0.0.1:9",
    projectId: "bronze-test",
  });
  assert.equal(joinKey("a/", "/b", "", "c/d"), "a/b/c/d");
  assert.equal(redactUrl("s3://key:secret@bucket/x"), "s3://bucket/x");
  assert.equal(openStore("s3://key:secret@bucket/x").url, "s3://bucket/x");
});
