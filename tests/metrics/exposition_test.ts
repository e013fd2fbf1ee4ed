import assert from "node:assert/strict";
import { Registry } from "../../lib/metrics/exposition.ts";

Deno.test("exposition: HELP/TYPE, labels in declared order, le last, cumulative buckets, +Inf", () => {
  const r = new Registry();
  const c = r.counter("jobs_total", "Jobs done.", ["queue", "kind"]);
  const g = r.gauge("temperature", "Degrees.", []);
  const h = r.histogram("wait_seconds", "Time waited.", ["queue"], [0.5, 1, 2.5]);
  c.inc({ kind: "x", queue: "a" }); // key order does not matter: the declared order is written
  c.inc({ queue: "a", kind: "x" }, 2);
  c.inc({ queue: "b", kind: "y" }, 0.5);
  g.set({}, -3.25);
  h.observe({ queue: "a" }, 0.5); // on a bound: counts in that bucket (le is "less or equal")
  h.observe({ queue: "a" }, 2);
  h.observe({ queue: "a" }, 1e6);
  assert.equal(
    r.render(),
    [
      "# HELP jobs_total Jobs done.",
      "# TYPE jobs_total counter",
      'jobs_total{queue="a",kind="x"} 3',
      'jobs_total{queue="b",kind="y"} 0.5',
      "# HELP temperature Degrees.",
      "# TYPE temperature gauge",
      "temperature -3.25",
      "# HELP wait_seconds Time waited.",
      "# TYPE wait_seconds histogram",
      'wait_seconds_bucket{queue="a",le="0.5"} 1',
      'wait_seconds_bucket{queue="a",le="1"} 1',
      'wait_seconds_bucket{queue="a",le="2.5"} 2',
      'wait_seconds_bucket{queue="a",le="+Inf"} 3',
      'wait_seconds_sum{queue="a"} 1000002.5',
      'wait_seconds_count{queue="a"} 3',
      "",
    ].join("\n"),
  );
});

Deno.test("exposition: label values and help text are escaped; special values are spelled as Prometheus reads them", () => {
  const r = new Registry();
  const g = r.gauge("odd", 'Back\\slash and\nnewline; "quotes" stay.', ["v"]);
  g.set({ v: 'a"b\\c\nd' }, Infinity);
  g.set({ v: "neg" }, -Infinity);
  g.set({ v: "nan" }, NaN);
  assert.equal(
    r.render(),
    [
      '# HELP odd Back\\\\slash and\\nnewline; "quotes" stay.',
      "# TYPE odd gauge",
      'odd{v="a\\"b\\\\c\\nd"} +Inf',
      'odd{v="neg"} -Inf',
      'odd{v="nan"} NaN',
      "",
    ].join("\n"),
  );
});

Deno.test("exposition: a family with no series is left out; init() exports a series at zero", () => {
  const r = new Registry();
  const c = r.counter("a_total", "A.", ["k"]);
  const h = r.histogram("b_seconds", "B.", [], [1]);
  assert.equal(r.render(), "");
  c.init({ k: "x" });
  h.init({});
  assert.equal(
    r.render(),
    [
      "# HELP a_total A.",
      "# TYPE a_total counter",
      'a_total{k="x"} 0',
      "# HELP b_seconds B.",
      "# TYPE b_seconds histogram",
      'b_seconds_bucket{le="1"} 0',
      'b_seconds_bucket{le="+Inf"} 0',
      "b_seconds_sum 0",
      "b_seconds_count 0",
      "",
    ].join("\n"),
  );
});

Deno.test("exposition: misuse is a programming error, caught at once", () => {
  const r = new Registry();
  const c = r.counter("c_total", "C.", ["k"]);
  assert.throws(
    () => c.inc({ k: "x" }, -1),
    /c_total can only grow by a finite amount >= 0, got -1/,
  );
  assert.throws(() => c.inc({ k: "x" }, NaN), /got NaN/);
  assert.throws(
    () => c.inc({ k: "x", extra: "y" } as { k: string }),
    /c_total takes labels k, got k, extra/,
  );
  assert.throws(() => r.gauge("c_total", "again", []), /metric c_total is registered twice/);
  assert.throws(() => r.gauge("bad-name", "x", []), /bad metric name "bad-name"/);
  assert.throws(() => r.gauge("g", "x", ["__reserved"]), /bad label name "__reserved" on g/);
  assert.throws(() => r.histogram("h", "x", ["le"], [1]), /histogram h cannot have label le/);
  assert.throws(() => r.histogram("h2", "x", [], [2, 1]), /strictly increasing buckets/);
  assert.throws(() => r.histogram("h3", "x", [], []), /strictly increasing buckets/);
  assert.equal(r.render(), "", "nothing was recorded by the rejected calls");
});
