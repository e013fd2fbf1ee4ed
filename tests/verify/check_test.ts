import assert from "node:assert/strict";
import { shown } from "../../lib/verify/check.ts";

Deno.test("shown: hex as it is; anything read from a corrupt file quoted, escaped to printable ASCII, cut short", () => {
  assert.equal(shown("a".repeat(64)), "a".repeat(64));
  assert.equal(shown('\x1b[2J\x07bad\u00e9"\\'), '"\\u001b[2J\\u0007bad\\u00e9\\"\\\\"');
  const long = shown("z".repeat(200));
  assert.equal(long, `"${"z".repeat(80)}"…`);
  for (const s of [shown("\x00\x01\x02"), shown("\n\r\t"), shown("\u2028x")]) {
    assert.match(s, /^"[\x20-\x7e]*"$/);
  }
});
