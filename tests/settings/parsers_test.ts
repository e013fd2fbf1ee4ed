/** lib/settings/parsers.ts: each value's parser, and the message that names a bad one. */
import assert from "node:assert/strict";
import type { BucketUrl, ObjectUrl } from "../../lib/blob/url.ts";
import type { RpcUrl } from "../../lib/source/url.ts";
import {
  age,
  duration,
  intIn,
  Invalid,
  ledger,
  ledgerOrLatest,
  objectUrl,
  type Parser,
  sourceUrl,
  storeUrl,
} from "../../lib/settings/parsers.ts";

/** The value, or the message of the Invalid. */
const run = <T>(parse: Parser<T>, raw: string) => {
  const v = parse(raw);
  return v instanceof Invalid ? `! ${v.message}` : v;
};

Deno.test("parsers: the URL settings are parsed once (lib/blob/url.ts, lib/source/url.ts), a bad one named", () => {
  assert.equal(
    (run(sourceUrl, "rpc+https://rpc.example.org") as RpcUrl).call,
    "https://rpc.example.org/",
  );
  assert.equal((run(sourceUrl, "gs://lake/ledgers") as BucketUrl).prefix, "ledgers/");
  assert.equal((run(storeUrl, "s3://b/p") as BucketUrl).bucket, "b");
  assert.equal((run(objectUrl, "gs://b/state/ck.json") as ObjectUrl).name, "ck.json");
  assert.equal(
    run(sourceUrl, "rpc+ftp://u:secret@host/x?apikey=secretsecret"),
    '! must be rpc+https:// or rpc+http:// for a Stellar RPC node, got "rpc+ftp://host/x"',
  );
  assert.equal(
    run(storeUrl, "gs://"),
    '! names no bucket: "gs://" (expected gs://bucket[/prefix])',
  );
  assert.equal(
    run(objectUrl, "s3://bucket"),
    '! must name an object, e.g. s3://bucket/state/checkpoint.json, got "s3://bucket"',
  );
});

Deno.test("parsers: numbers, ledgers, durations and ages", () => {
  assert.equal(run(intIn(1, 64), "8"), 8);
  assert.equal(run(intIn(1, 64), "0"), "! must be between 1 and 64, got 0");
  assert.equal(run(intIn(1, 64), "x"), '! must be a whole number, got "x"');
  assert.equal(run(ledger, "4294967295"), 4294967295);
  assert.equal(
    run(ledger, "latest"),
    "! latest is for copy (the newest ledger of its source); give a ledger",
  );
  assert.equal(run(ledgerOrLatest, "latest"), "latest");
  assert.equal(run(ledgerOrLatest, "0"), "! must be between 1 and 4294967295, got 0");
  assert.equal(run(duration, "500ms"), 0.5);
  assert.equal(run(duration, "0s"), '! must be more than 0, got "0s"');
  assert.equal(run(age, "0s"), 0);
  assert.equal(run(age, "7d"), 7 * 86_400);
  assert.equal(run(age, "7 days"), '! must be an age such as 0s, 30m, 24h or 7d, got "7 days"');
});
