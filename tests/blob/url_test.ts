/** lib/blob/url.ts: store and object URLs, parsed once into what the stores and checkpoint take. */
import assert from "node:assert/strict";
import { parseObjectUrl, parseStoreUrl, toObjectUrl, toStoreUrl } from "../../lib/blob/url.ts";

Deno.test("parseStoreUrl: a path, file://, gs:// or s3://; user:password never kept; bad ones named", () => {
  assert.deepEqual(parseStoreUrl("./data"), {
    scheme: "file",
    path: "./data",
    url: `${Deno.cwd()}/data`,
  });
  assert.deepEqual(parseStoreUrl("file:///var/bronze%20data"), {
    scheme: "file",
    path: "/var/bronze data",
    url: "file:///var/bronze%20data",
  });
  assert.deepEqual(parseStoreUrl("s3://key:secret@bucket/some//prefix/"), {
    scheme: "s3",
    bucket: "bucket",
    prefix: "some/prefix/",
    url: "s3://bucket/some//prefix",
  });
  assert.deepEqual(parseStoreUrl("GS://b"), {
    scheme: "gs",
    bucket: "b",
    prefix: "",
    url: "GS://b",
  });
  assert.deepEqual(parseStoreUrl(" "), { problem: "must not be empty" });
  assert.deepEqual(parseStoreUrl("file://"), { problem: 'names no path: "file://"' });
  assert.deepEqual(parseStoreUrl("file://host/x"), {
    problem: 'names no path on this machine: "file://host/x" (expected file:///path)',
  });
  assert.deepEqual(parseStoreUrl("s3://k:secret@"), {
    problem: 'names no bucket: "s3://" (expected s3://bucket[/prefix])',
  });
  assert.deepEqual(parseStoreUrl("https://u:pw@host/x"), {
    problem:
      'must be a local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix], got "https://host/x"',
  });
});

Deno.test("parseObjectUrl: the store of the object's folder and its name; its local path if any", () => {
  assert.deepEqual(parseObjectUrl("gs://b/state/ck.json"), {
    root: { scheme: "gs", bucket: "b", prefix: "state/", url: "gs://b/state" },
    name: "ck.json",
    local: null,
  });
  const local = parseObjectUrl("./state/ck.json");
  assert.ok(!("problem" in local));
  assert.equal(local.root.url, `${Deno.cwd()}/state`);
  assert.equal(local.name, "ck.json");
  assert.equal(local.local, "./state/ck.json");
  const bare = parseObjectUrl("ck.json");
  assert.ok(!("problem" in bare));
  assert.equal(bare.root.url, Deno.cwd());
  const top = parseObjectUrl("/ck.json");
  assert.ok(!("problem" in top));
  assert.equal(top.root.url, "/");
  assert.deepEqual(parseObjectUrl("s3://b"), {
    problem: 'must name an object, e.g. s3://b/state/checkpoint.json, got "s3://b"',
  });
  assert.deepEqual(parseObjectUrl("./state/"), {
    problem: 'must name a file, not a folder: "./state/"',
  });
});

Deno.test("toStoreUrl and toObjectUrl: a parsed value as it is; a string parsed, a bad one a configuration error", () => {
  const parsed = toStoreUrl("gs://b/p");
  assert.equal(toStoreUrl(parsed), parsed);
  assert.throws(() => toStoreUrl("gs://"), {
    name: "BronzeError",
    message: 'storage names no bucket: "gs://" (expected gs://bucket[/prefix])',
  });
  assert.throws(() => toObjectUrl("gs://b"), (e: Error & { exitCode?: number }) => {
    assert.equal(e.exitCode, 2);
    assert.equal(
      e.message,
      'checkpoint location must name an object, e.g. gs://b/state/checkpoint.json, got "gs://b"',
    );
    return true;
  });
});
