/** lib/settings/parsers.ts: each value's parser, and the message that names a bad one. */
import assert from "node:assert/strict";
import {
  age,
  duration,
  intIn,
  Invalid,
  ledger,
  ledgerOrLatest,
  type Parser,
  sourceUrl,
} from "../../lib/settings/parsers.ts";

/** The value, or the message of the Invalid. */
const run = <T>(parse: Parser<T>, raw: string) => {
  const v = parse(raw);
  return v instanceof Invalid ? `! ${v.message}` : v;
};

Deno.test("parsers: --source takes a lake URL or a Stellar RPC node, and names a bad one", () => {
  assert.equal(
    run(sourceUrl, "rpc+https://rpc.example.org:443/soroban"),
    "rpc+https://rpc.example.org:443/soroban",
  );
  assert.equal(run(sourceUrl, "rpc+http://127.0.0.1:8000"), "rpc+http://127.0.0.1:8000");
  assert.equal(run(sourceUrl, "gs://lake/ledgers"), "gs://lake/ledgers");
  assert.equal(
    run(sourceUrl, "rpc+ftp://u:secret@host/x"),
    '! must be rpc+https:// or rpc+http:// for a Stellar RPC node, got "rpc+ftp://host/x"',
  );
  assert.equal(
    run(sourceUrl, "rpc+https://"),
    '! names no RPC host: "rpc+https://" (expected rpc+https://host[:port][/path])',
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
