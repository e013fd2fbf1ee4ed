/** lib/source/url.ts: --source parsed once: a lake's store URL, or an RPC node with its secrets apart. */
import assert from "node:assert/strict";
import { isRpcUrl, parseSourceUrl, toSourceUrl } from "../../lib/source/url.ts";

Deno.test("parseSourceUrl: an RPC node's call URL, printable URL, credentials and secrets", () => {
  const rpc = parseSourceUrl(
    "rpc+https://u:p%40ss@rpc.example.org:8443/soroban?key=abcdefgh1&x=1#f",
  );
  assert.deepEqual(rpc, {
    scheme: "rpc+https",
    call: "https://rpc.example.org:8443/soroban?key=abcdefgh1&x=1",
    printable: "https://rpc.example.org:8443/soroban",
    authorization: `Basic ${btoa("u:p@ss")}`,
    secrets: ["?key=abcdefgh1&x=1", "abcdefgh1"],
    url: "rpc+https://rpc.example.org:8443/soroban",
  });
  assert.ok(!("problem" in rpc) && isRpcUrl(rpc));
  const plain = parseSourceUrl("rpc+http://127.0.0.1:8000");
  assert.ok(!("problem" in plain) && isRpcUrl(plain));
  assert.equal(plain.authorization, undefined);
  assert.deepEqual(plain.secrets, []);
});

Deno.test("parseSourceUrl: a lake is a store URL; a bad RPC URL is named without its credentials", () => {
  const lake = parseSourceUrl("gs://lake/ledgers");
  assert.ok(!("problem" in lake) && !isRpcUrl(lake));
  assert.deepEqual(lake, {
    scheme: "gs",
    bucket: "lake",
    prefix: "ledgers/",
    url: "gs://lake/ledgers",
  });
  assert.deepEqual(parseSourceUrl("rpc+ftp://u:secret@host/x?apikey=secretsecret"), {
    problem: 'must be rpc+https:// or rpc+http:// for a Stellar RPC node, got "rpc+ftp://host/x"',
  });
  assert.deepEqual(parseSourceUrl("rpc+https://"), {
    problem: 'names no RPC host: "rpc+https://" (expected rpc+https://host[:port][/path])',
  });
  assert.throws(() => toSourceUrl("ftp://x"), {
    message:
      'source must be a local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix], got "ftp://x"',
  });
});
