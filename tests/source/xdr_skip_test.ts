/**
 * The generated skippers (lib/source/_skippers.generated.ts, made by lib/source/xdr_skip.ts) are
 * what the generator makes from the SDK today, and agree with their specification, the plain
 * closure walk in tests/support/xdr_skip_reference.ts: on real pubnet and testnet ledgers,
 * synthetic v0/v1/v2 ledgers, and thousands of corrupted copies of them (truncated, a word
 * overwritten), both reach the same end or both refuse; a refusal that is not a truncation says
 * the same thing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { xdr } from "@stellar/stellar-sdk";
import { generateSkippers } from "../../lib/source/xdr_skip.ts";
import { XdrCorruptError } from "../../lib/source/_xdr.ts";
import { skipLcm } from "../../lib/source/_skippers.generated.ts";
import { ZstdDecompressor } from "../../lib/runtime/zstd.ts";
import { syntheticLedgers } from "../../scripts/make-lake.ts";
import { skipper as reference } from "../support/xdr_skip_reference.ts";
import { SAMPLES, SAMPLES_ABSENT } from "../support/lakes.ts";

const fast = skipLcm;
const slow = reference(xdr.LedgerCloseMeta);

/** The skipper's verdict: where the value ends, or the error it threw. */
function verdict(skip: (v: DataView, o: number) => number, bytes: Uint8Array): number | Error {
  try {
    return skip(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0);
  } catch (e) {
    return e as Error;
  }
}

function assertAgree(bytes: Uint8Array, what: string): void {
  const want = verdict(slow, bytes);
  const got = verdict(fast, bytes);
  if (typeof want === "number") {
    assert.equal(got, want, what);
    return;
  }
  assert.ok(got instanceof XdrCorruptError, `${what}: ${got}`);
  assert.ok(want instanceof XdrCorruptError, `${what}: ${want}`);
  // Fixed-size fields in a row are checked at once: a truncation may be found at the start of
  // the run rather than at the field; everything else is found at the same byte, in the same words.
  if (want.message.startsWith("truncated XDR")) assert.match(got.message, /^truncated XDR/, what);
  else assert.equal(got.message, want.message, what);
}

/** Real LedgerCloseMetas of the sample lakes (each object: a batch of one). */
function sampleLedgers(): Uint8Array[] {
  const zstd = new ZstdDecompressor();
  const out: Uint8Array[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) walk(path);
      else if (/\.xdr\.zstd?$/.test(e.name)) {
        out.push(zstd.decompress(Deno.readFileSync(path)).subarray(12));
      }
    }
  };
  for (const network of ["pubnet", "testnet"]) walk(`${SAMPLES}${network}`);
  return out;
}

/** A small deterministic PRNG, so a failure names a case that can be run again. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function mutations(bytes: Uint8Array, seed: number, n: number): [string, Uint8Array][] {
  const rnd = prng(seed);
  const out: [string, Uint8Array][] = [];
  for (let i = 0; i < n; i++) {
    if (i % 3 === 0) {
      const len = Math.floor(rnd() * bytes.length);
      out.push([`truncated to ${len}`, bytes.subarray(0, len)]);
      continue;
    }
    const copy = bytes.slice();
    const at = Math.floor(rnd() * (bytes.length / 4)) * 4;
    const word = [0, 1, 2, 3, 4, 5, 0xffffffff, 0x7fffffff, Math.floor(rnd() * 2 ** 32)][
      Math.floor(rnd() * 9)
    ];
    new DataView(copy.buffer).setUint32(at, word);
    out.push([`word at ${at} set to ${word}`, copy]);
  }
  return out;
}

Deno.test("the committed skippers are what the generator makes from this SDK (else: deno task skippers)", async () => {
  const committed = await Deno.readTextFile(
    new URL("../../lib/source/_skippers.generated.ts", import.meta.url),
  );
  assert.equal(committed, generateSkippers());
});

Deno.test({
  name: "real ledgers: the generated skipper and the reference agree, intact and corrupted",
  ignore: !!SAMPLES_ABSENT,
  fn() {
    const ledgers = sampleLedgers();
    assert.ok(ledgers.length > 100, `sample ledgers: ${ledgers.length}`);
    for (const [i, bytes] of ledgers.entries()) {
      assert.equal(verdict(fast, bytes), bytes.length, `sample ledger #${i}`);
      assertAgree(bytes, `sample ledger #${i}`);
    }
    // The largest ledgers hold the most kinds of structure: corrupt them most.
    const big = [...ledgers].sort((a, b) => b.length - a.length).slice(0, 8);
    for (const [i, bytes] of big.entries()) {
      for (const [what, bad] of mutations(bytes, 1000 + i, 400)) {
        assertAgree(bad, `sample ledger (${bytes.length} bytes): ${what}`);
      }
    }
  },
});

Deno.test("synthetic v0, v1 and v2 ledgers: the generated skipper and the reference agree, intact and corrupted", () => {
  for (const lcmVersion of [0, 1, 2] as const) {
    const ledgers = [...syntheticLedgers({ start: 1, count: 40, lcmVersion, ledgerBytes: 6000 })];
    for (const [i, { xdr: bytes }] of ledgers.entries()) {
      assert.equal(verdict(fast, bytes), bytes.length, `v${lcmVersion} #${i}`);
      for (const [what, bad] of mutations(bytes, lcmVersion * 100 + i, 60)) {
        assertAgree(bad, `synthetic v${lcmVersion} #${i}: ${what}`);
      }
    }
  }
});
