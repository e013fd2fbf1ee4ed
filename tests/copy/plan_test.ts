import assert from "node:assert/strict";
import { coveredThrough, insertHeld, planWork } from "../../lib/copy/plan.ts";
import { cellOf, type Range } from "../../lib/table/grid.ts";

/** A small deterministic PRNG (mulberry32), so a failing case can be replayed from its seed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random non-overlapping ranges inside [1, max], sorted. */
function randomRanges(next: () => number, max: number, count: number, maxLen: number): Range[] {
  const out: Range[] = [];
  let at = 1;
  for (let i = 0; i < count && at <= max; i++) {
    const start = at + Math.floor(next() * maxLen);
    const end = Math.min(max, start + Math.floor(next() * maxLen));
    if (start > max) break;
    out.push({ start, end });
    at = end + 2;
  }
  return out;
}

function holds(ranges: readonly Range[], ledger: number): number {
  return ranges.filter((r) => r.start <= ledger && ledger <= r.end).length;
}

Deno.test("planWork, 500 random cases: every missing ledger planned exactly once, held never, every range inside one cell", () => {
  for (let seed = 1; seed <= 500; seed++) {
    const next = rng(seed);
    const size = 1 + Math.floor(next() * 50);
    const max = 400;
    const within = { start: 1 + Math.floor(next() * 100), end: 200 + Math.floor(next() * 200) };
    const held = randomRanges(next, max, 8, 40);
    // Stored orphans: some free of the catalog (to adopt), some overlapping it (to ignore).
    const stored = randomRanges(next, max, 6, 30);
    const work = planWork(within, size, held, stored);
    const why = `seed ${seed}: within ${JSON.stringify(within)} size ${size}`;
    for (let l = within.start; l <= within.end; l++) {
      const expected = holds(held, l) ? 0 : 1;
      assert.equal(holds(work, l), expected, `${why}: ledger ${l}`);
    }
    for (const r of work) {
      assert.ok(r.start >= within.start && r.end <= within.end, `${why}: ${r.start}-${r.end}`);
      const adopted = stored.some((s) => s.start === r.start && s.end === r.end);
      // A planned range stays in one grid cell, unless it is a stored partition taken as it is.
      if (!adopted) {
        assert.equal(
          cellOf(r.start, size).end,
          cellOf(r.end, size).end,
          `${why}: ${r.start}-${r.end}`,
        );
      }
    }
    for (let i = 1; i < work.length; i++) {
      assert.ok(work[i].start > work[i - 1].end, `${why}: work out of order or overlapping`);
    }
  }
});

Deno.test("planWork adopts a stored partition the catalog lacks as it is, and ignores one it partly holds", () => {
  const work = planWork({ start: 1, end: 300 }, 100, [{ start: 1, end: 100 }], [
    { start: 101, end: 150 }, // orphan: adopted whole
    { start: 51, end: 120 }, // overlaps the catalog: never adopted
    { start: 401, end: 500 }, // outside the run
  ]);
  assert.deepEqual(work, [{ start: 101, end: 150 }, { start: 151, end: 200 }, {
    start: 201,
    end: 300,
  }]);
});

Deno.test("planWork of a range the catalog holds whole is empty", () => {
  assert.deepEqual(planWork({ start: 5, end: 95 }, 10, [{ start: 1, end: 100 }]), []);
});

Deno.test("coveredThrough follows the contiguous held run from a ledger; insertHeld keeps order", () => {
  const held: Range[] = [{ start: 1, end: 10 }, { start: 21, end: 30 }];
  insertHeld(held, { start: 11, end: 20 });
  assert.deepEqual(held.map((h) => h.start), [1, 11, 21]);
  assert.equal(coveredThrough(held, 20), 30);
  assert.equal(coveredThrough([{ start: 1, end: 10 }, { start: 12, end: 20 }], 10), 10);
});
