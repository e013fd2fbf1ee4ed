/**
 * lib/metadata/catalog.ts: opening a catalog. A DSN's password is never printed, and a catalog
 * that cannot be reached is one line naming it.
 */
import assert from "node:assert/strict";
import { runCli } from "../support/cli.ts";

Deno.test("a DSN's password is never printed: unreachable server, missing database, malformed URL", async () => {
  const secret = "S3cr3t-pw";
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      ["migrate", "--catalog", `postgres://bronze:${secret}@127.0.0.1:1/db`],
      {},
      /^bronze: cannot reach catalog postgres:\/\/bronze:\*\*\*@127\.0\.0\.1:1\/db: connection refused/,
    ],
    [
      ["migrate"],
      { CATALOG_DSN: `postgres://postgres:${secret}@127.0.0.1:5432/bronze_no_such_db` },
      /^bronze: catalog postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\/bronze_no_such_db: database "bronze_no_such_db" does not exist; create it first/,
    ],
    [
      ["migrate", "--catalog", `mysql://bronze:${secret}@host/db`],
      {},
      /^bronze: --catalog must be a postgres:\/\/ or postgresql:\/\/ URL \(value not shown: it may contain a password\)$/m,
    ],
    [
      ["migrate", "--status"],
      { CATALOG_DSN: `bronze:${secret}@host` },
      /^bronze: CATALOG_DSN must be a postgres:\/\/ or postgresql:\/\/ URL/,
    ],
    [
      ["migrate"],
      { CATALOG_DSN: `host=db password=${secret}` },
      /^bronze: CATALOG_DSN is not a valid URL; expected postgres:\/\/user:password@host:5432\/database/,
    ],
  ];
  for (const [args, env, expected] of cases) {
    const r = await runCli(args, { env });
    assert.notEqual(r.code, 0);
    assert.ok(
      !r.stdout.includes(secret) && !r.stderr.includes(secret),
      `password leaked: ${r.stderr}`,
    );
    assert.match(r.stderr, expected);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
  }
});

Deno.test("an unreachable catalog gives one line naming it and what to do", async () => {
  const r = await runCli(["migrate", "--catalog", "postgres://postgres@127.0.0.1:1/postgres"]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "bronze: cannot reach catalog postgres://postgres@127.0.0.1:1/postgres: connection refused; is PostgreSQL running there? (set --catalog or CATALOG_DSN, or omit both for the embedded catalog)\n",
  );
});
