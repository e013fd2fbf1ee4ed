/** lib/runtime/format.ts: the figures every command and log line prints. */
import assert from "node:assert/strict";
import { formatBytes, formatDuration, formatSpan, oneLine } from "../../lib/runtime/format.ts";

Deno.test("formatBytes: decimal units, one decimal, plain bytes below 1 KB", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1000), "1.0 KB");
  assert.equal(formatBytes(1_234_567), "1.2 MB");
  assert.equal(formatBytes(13_700_000), "13.7 MB");
  assert.equal(formatBytes(2.5e12), "2.5 TB");
  assert.equal(formatBytes(7e18), "7000.0 PB");
});

Deno.test("formatDuration: ms below a second, then s, m+s, h+m; unknown as ?", () => {
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(0.25), "250ms");
  assert.equal(formatDuration(4.8), "5s");
  assert.equal(formatDuration(75), "1m15s");
  assert.equal(formatDuration(7260), "2h01m");
  assert.equal(formatDuration(Infinity), "?");
  assert.equal(formatDuration(NaN), "?");
});

Deno.test("formatSpan: whole days, hours or minutes as a flag would say them, else a duration", () => {
  assert.equal(formatSpan(0), "0s");
  assert.equal(formatSpan(90), "1m30s");
  assert.equal(formatSpan(1800), "30m");
  assert.equal(formatSpan(86_400), "24h");
  assert.equal(formatSpan(93_900), "26h05m");
  assert.equal(formatSpan(604_800), "7d");
  assert.equal(formatSpan(2 * 86_400 + 3600), "49h");
  assert.equal(formatSpan(2 * 86_400 + 5400), "2d01h");
});

Deno.test("oneLine: a quoted message's new lines and runs of white space fold to one space", () => {
  assert.equal(
    oneLine("Unexpected token }\n  in JSON at position 4\r\n"),
    "Unexpected token } in JSON at position 4",
  );
  assert.equal(oneLine("\t already one line "), "already one line");
  assert.equal(oneLine(""), "");
});
