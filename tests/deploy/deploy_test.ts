/**
 * deploy/: the Prometheus alerting rules pass `promtool check rules` and their unit tests
 * (tests/deploy/bronze-alerts.promtool.yaml, on Prometheus's own rule engine); the Grafana
 * dashboard's queries are valid PromQL; and every metric either names is one a running copier
 * really exports: a follower and a fleet copier are started with --metrics-addr and scraped.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { catalogTarget } from "../support/catalogs.ts";
import { copyEnv } from "../support/copy.ts";
import { syntheticLake, tempDir } from "../support/lakes.ts";
import { Copier, growingLake, range } from "../support/growing.ts";
import { Output } from "../support/wait.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const RULES = join(ROOT, "deploy/bronze-alerts.yaml");
const RULE_TESTS = join(ROOT, "tests/deploy/bronze-alerts.promtool.yaml");
const DASHBOARD = join(ROOT, "deploy/bronze-dashboard.json");
const MAIN = join(ROOT, "main.ts");

const PROMTOOL_MISSING = await new Deno.Command("promtool", { args: ["--version"], stdout: "null" })
  .output().then((o) => o.success ? undefined : "promtool fails", () => "promtool is not on PATH");
if (PROMTOOL_MISSING) {
  console.log(
    `SKIPPED the promtool checks of deploy/: ${PROMTOOL_MISSING} (apt-get install -y prometheus)`,
  );
}

async function promtool(...args: string[]) {
  const out = await new Deno.Command("promtool", { args, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/** Each alerting rule's expression, from the rules file (one per `expr:`, block or inline). */
async function ruleExpressions(): Promise<string[]> {
  const text = await Deno.readTextFile(RULES);
  const out: string[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const m = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!m) return;
    if (m[2] !== "|") return void out.push(m[2]);
    const block: string[] = [];
    for (let j = i + 1; j < lines.length && /^\s{2,}/.test(lines[j]); j++) {
      if (lines[j].search(/\S/) <= m[1].length) break;
      block.push(lines[j].trim());
    }
    out.push(block.join(" "));
  });
  return out;
}

interface Dashboard {
  panels: { title: string; targets: { expr: string }[] }[];
  templating: { list: { name: string; query: { query: string } }[] };
}

const dashboard = async () => JSON.parse(await Deno.readTextFile(DASHBOARD)) as Dashboard;

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
]);

/**
 * The metric names a PromQL expression reads: identifiers that are neither functions, keywords,
 * label names (in `{…}`, `by (…)`, `on (…)`) nor inside strings or ranges.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names: string[] = [];
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = bare.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith("(") || KEYWORDS.has(m[0])) continue;
    names.push(m[0]);
  }
  return names;
}

/** What the dashboard's panels and variables read. */
async function dashboardExpressions(): Promise<string[]> {
  const d = await dashboard();
  return [
    ...d.panels.flatMap((p) => p.targets.map((t) => t.expr)),
    // label_values(<series>, <label>): the series is an expression, the label is not.
    ...d.templating.list.map((v) => /^label_values\((.*),\s*\w+\)$/.exec(v.query.query)![1]),
  ];
}

Deno.test({
  name: "deploy: the alerting rules pass promtool check rules and their unit tests",
  ignore: !!PROMTOOL_MISSING,
  async fn() {
    const exprs = await ruleExpressions();
    assert.ok(exprs.length >= 4, exprs.join("\n"));
    const check = await promtool("check", "rules", RULES);
    assert.equal(check.code, 0, check.text);
    assert.match(check.text, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    const unit = await promtool("test", "rules", RULE_TESTS);
    assert.equal(unit.code, 0, unit.text);
    // Every alert is exercised by the unit tests.
    const tests = await Deno.readTextFile(RULE_TESTS);
    for (const [, name] of (await Deno.readTextFile(RULES)).matchAll(/- alert: (\w+)/g)) {
      assert.match(tests, new RegExp(`alertname: ${name}\\n`), `no unit test for ${name}`);
    }
  },
});

Deno.test({
  name: "deploy: every query of the Grafana dashboard is valid PromQL (checked by promtool)",
  ignore: !!PROMTOOL_MISSING,
  async fn() {
    const d = await dashboard();
    assert.ok(d.panels.length >= 8);
    // Each query as a recording rule: promtool parses what Prometheus would.
    await using dir = await tempDir("dashboard");
    const exprs = await dashboardExpressions();
    const rules = [
      "groups:",
      "  - name: dashboard",
      "    rules:",
      ...exprs.flatMap((e, i) => [`      - record: q${i}`, `        expr: ${JSON.stringify(e)}`]),
    ].join("\n");
    const file = join(dir.path, "dashboard-queries.yaml");
    await Deno.writeTextFile(file, rules + "\n");
    const check = await promtool("check", "rules", file);
    assert.equal(check.code, 0, check.text);
  },
});

Deno.test("deploy: every metric the rules and the dashboard read is one a running copier exports (a follower's scrape and a fleet copier's)", async () => {
  const wanted = new Set([
    ...(await ruleExpressions()).flatMap(metricNames),
    ...(await dashboardExpressions()).flatMap(metricNames),
  ]);
  for (const name of wanted) assert.match(name, /^bronze_/, `${name} is not bronze's`);
  const scraped = new Set([...await followerScrape(), ...await fleetScrape()]);
  for (const name of wanted) {
    assert.ok(scraped.has(name), `${name} is in no copier's /metrics: ${[...scraped].join(" ")}`);
  }
});

/** The sample names of a Prometheus text exposition. */
function sampleNames(text: string): string[] {
  return text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => /^[^{ ]+/.exec(l)![0]);
}

/** A follower with --flush-interval, caught up at the head of a lake that has a cell to fill. */
async function followerScrape(): Promise<string[]> {
  await using target = await catalogTarget("postgres");
  await using dir = await tempDir("deploy-lake");
  await using out = await tempDir("deploy-out");
  const lake = await growingLake(dir.path);
  await lake.publish(...range(1, 30));
  const copier = new Copier({
    ...copyEnv(target, lake.url, out.path),
    PARTITION_SIZE: "20",
    POLL_INTERVAL: "100ms",
  }, ["--follow", "--start", "1", "--flush-interval", "1h", "--metrics-addr", "127.0.0.1:0"]);
  try {
    const [, url] = await copier.until(/\[metrics\] serving (http:\/\/\S+)\/metrics/);
    await copier.until(/\[follow\] caught up at ledger 30;/);
    return sampleNames(await (await fetch(`${url}/metrics`)).text());
  } finally {
    copier.child.kill("SIGKILL");
    await copier.child.status;
  }
}

/** A fleet copier, paused in its first cell. */
async function fleetScrape(): Promise<string[]> {
  const source = await syntheticLake({ network: "testnet", start: 1, count: 100, lcmVersion: 2 });
  await using target = await catalogTarget("postgres");
  await using out = await tempDir("deploy-fleet");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "copy", "--fleet", "--start", "1", "--end", "100"],
    env: {
      ...copyEnv(target, source, out.path),
      PARTITION_SIZE: "20",
      METRICS_ADDR: "127.0.0.1:0",
      BRONZE_FAILPOINT: "build-ledger:5:pause",
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Output(child.stderr, "the fleet copier");
  try {
    await stderr.until("[failpoint] paused at build-ledger:5");
    const [, url] = await stderr.until(/\[metrics\] serving (http:\/\/\S+)\/metrics/);
    return sampleNames(await (await fetch(`${url}/metrics`)).text());
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}
