/**
 * Random moments for the tests that kill processes at random (crash_test, fleet_test): seeded, the
 * seed printed, and BRONZE_TEST_SEED replays a run's moments (as far as the machine's pace lets a
 * moment land at the same point of the work).
 */

/** A deterministic generator of numbers in [0, 1) for `test`, announcing its seed. */
export function seededRandom(test: string): () => number {
  const given = Deno.env.get("BRONZE_TEST_SEED");
  let seed = given !== undefined ? Number(given) : Math.floor(Math.random() * 0x7fffffff);
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`BRONZE_TEST_SEED=${given}: not a non-negative integer`);
  }
  console.log(`${test}: seed ${seed} (BRONZE_TEST_SEED=${seed} replays these moments)`);
  return () => (seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) / 0x7fffffff;
}
