/**
 * lib/source/_rpc_transport.ts: what the RPC source prints of its endpoint. The calls themselves
 * go to a real node in rpc_test.ts; here, the scrub every error line passes through.
 */
import assert from "node:assert/strict";
import { endpointOf } from "../../lib/source/_rpc_transport.ts";
import { isRpcUrl, parseSourceUrl } from "../../lib/source/url.ts";

Deno.test("endpointOf: the call URL keeps the key, the printable one and every scrubbed line do not", () => {
  const parsed = parseSourceUrl(
    "rpc+https://alice:s3cr3t-pw@rpc.example:8443/v1?apikey=TOPSECRETKEY42",
  );
  assert.ok(!("problem" in parsed) && isRpcUrl(parsed));
  const ep = endpointOf(parsed);
  assert.equal(ep.call, "https://rpc.example:8443/v1?apikey=TOPSECRETKEY42");
  assert.equal(ep.printable, "https://rpc.example:8443/v1");
  assert.equal(ep.headers.Authorization, `Basic ${btoa("alice:s3cr3t-pw")}`);
  // A fetch error may quote the whole URL, the key alone, or the key URL-encoded.
  assert.equal(
    ep.scrub(`request to ${ep.call} failed; key TOPSECRETKEY42; ?apikey=TOPSECRETKEY42`),
    "request to https://rpc.example:8443/v1 failed; key ***; ***",
  );
  // user:password travel only in the header: never in a URL that might be printed.
  for (const url of [ep.call, ep.printable]) assert.ok(!/alice|s3cr3t/.test(url), url);
});

Deno.test("endpointOf: a URL without credentials sends no header and scrubs nothing", () => {
  const parsed = parseSourceUrl("rpc+http://127.0.0.1:8000");
  assert.ok(!("problem" in parsed) && isRpcUrl(parsed));
  const ep = endpointOf(parsed);
  assert.deepEqual(ep.headers, {});
  assert.equal(ep.scrub("ledger 1234567: timed out"), "ledger 1234567: timed out");
});
