/**
 * lib/metadata/_ssl.ts: a DSN's sslmode as libpq defines it, without node-postgres's warning.
 * Against a private cluster with TLS on and a self-signed certificate (its CA made here), and
 * against the shared server, which has TLS off.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openCatalog } from "../../lib/metadata/catalog.ts";
import { sslPlan } from "../../lib/metadata/_ssl.ts";
import { BronzeError } from "../../lib/runtime/errors.ts";
import { createTestDatabase, poolOf } from "../support/catalogs.ts";
import { runCli } from "../support/cli.ts";
import { tempDir } from "../support/lakes.ts";
import { clusterMissing, pgCluster } from "../support/pg_cluster.ts";

const MISSING = await clusterMissing();

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** A CA, and a server certificate it signed for the name `localhost` only. */
async function certificates(dir: string) {
  const days = ["-days", "2"];
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-subj",
    "/CN=bronze test CA",
    ...days,
  ], dir);
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "other.key",
    "-out",
    "other.crt",
    "-subj",
    "/CN=another CA",
    ...days,
  ], dir);
  await openssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost",
  ], dir);
  await Deno.writeTextFile(join(dir, "san.ext"), "subjectAltName=DNS:localhost\n");
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-extfile",
    "san.ext",
    ...days,
  ], dir);
  const read = (n: string) => Deno.readTextFile(join(dir, n));
  return {
    ca: join(dir, "ca.crt"),
    other: join(dir, "other.crt"),
    serverCrt: await read("server.crt"),
    serverKey: await read("server.key"),
  };
}

/** Whether the catalog's connection is encrypted, as the server sees it. */
async function encrypted(dsn: string, stateDir: string): Promise<boolean> {
  const c = await openCatalog({ dsn, stateDir });
  try {
    const { rows } = await poolOf(c).query<{ ssl: boolean }>(
      "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    return rows[0].ssl;
  } finally {
    await c.close();
  }
}

async function refusal(dsn: string, stateDir: string): Promise<string> {
  try {
    await (await openCatalog({ dsn, stateDir })).close();
  } catch (err) {
    assert.ok(err instanceof BronzeError, String(err));
    return err.message;
  }
  throw new Error(`${dsn} connected`);
}

Deno.test({
  name:
    "sslmode against a server with TLS on (self-signed): each mode as libpq means it; no SECURITY WARNING",
  ignore: !!MISSING,
  async fn() {
    await using dir = await tempDir();
    const certs = await certificates(dir.path);
    await using pg = await pgCluster({
      files: { "server.crt": certs.serverCrt, "server.key": certs.serverKey },
      conf: ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"],
      // `tlsonly` may connect only with TLS, `plainonly` only without.
      hba: [
        "local all all trust",
        "hostssl all tlsonly 127.0.0.1/32 trust",
        "hostnossl all plainonly 127.0.0.1/32 trust",
        "host all postgres 127.0.0.1/32 trust",
      ],
      roles: ["tlsonly", "plainonly"],
    });
    const state = dir.path;
    const at = (params: string, o: { user?: string; host?: string } = {}) =>
      pg.url({ ...o, params });

    assert.equal(await encrypted(at("?sslmode=disable"), state), false);
    // prefer is libpq's default: TLS when the server has it, unverified.
    assert.equal(await encrypted(at(""), state), true);
    assert.equal(await encrypted(at("?sslmode=prefer"), state), true);
    assert.equal(await encrypted(at("?sslmode=prefer", { user: "plainonly" }), state), false);
    // allow: without TLS first, with it when the server insists.
    assert.equal(await encrypted(at("?sslmode=allow"), state), false);
    assert.equal(await encrypted(at("?sslmode=allow", { user: "tlsonly" }), state), true);
    // require: TLS, the self-signed certificate taken as it is.
    assert.equal(await encrypted(at("?sslmode=require", { user: "tlsonly" }), state), true);
    // verify-ca: signed by the CA named, whatever the host name (127.0.0.1, not localhost).
    const ca = `sslrootcert=${encodeURIComponent(certs.ca)}`;
    assert.equal(await encrypted(at(`?sslmode=verify-ca&${ca}`), state), true);
    assert.match(
      await refusal(at(`?sslmode=verify-ca&sslrootcert=${encodeURIComponent(certs.other)}`), state),
      /^catalog postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres\?sslmode=verify-ca&sslrootcert=\S+: .*certificate/,
    );
    // require with a root certificate is verify-ca, as in libpq.
    assert.match(
      await refusal(at(`?sslmode=require&sslrootcert=${encodeURIComponent(certs.other)}`), state),
      /certificate/,
    );
    // verify-full: the host name too: localhost is on the certificate, 127.0.0.1 is not.
    assert.equal(
      await encrypted(at(`?sslmode=verify-full&${ca}`, { host: "localhost" }), state),
      true,
    );
    assert.match(await refusal(at(`?sslmode=verify-full&${ca}`), state), /127\.0\.0\.1/);
    // A certificate file that is not there: a configuration error naming it.
    await assert.rejects(
      openCatalog({
        dsn: at("?sslmode=verify-ca&sslrootcert=/nonexistent/ca.crt"),
        stateDir: state,
      }),
      (err: unknown) =>
        err instanceof BronzeError && err.exitCode === 2 &&
        err.message ===
          "catalog DSN sslrootcert /nonexistent/ca.crt cannot be read: No such file or directory",
    );

    // Through the CLI, as the user meets it: nothing but bronze's own lines.
    for (const params of ["?sslmode=require", "?sslmode=prefer", `?sslmode=verify-ca&${ca}`]) {
      const r = await runCli(["migrate", "--catalog", at(params), "--state-dir", state]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, /SECURITY WARNING|Warning/i, params);
    }
  },
});

Deno.test("sslmode against the shared server (TLS off): prefer connects without it, require is one line naming the catalog; a bad mode is a configuration error", async () => {
  const db = await createTestDatabase();
  await using state = await tempDir();
  try {
    const plain = `${db.dsn}?sslmode=prefer`;
    assert.equal(await encrypted(plain, state.path), false);
    assert.equal(await encrypted(db.dsn, state.path), false);
    const required = `${db.dsn}?sslmode=require`;
    const r = await runCli(["migrate", "--catalog", required, "--state-dir", state.path]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      r.stderr,
      `bronze: catalog ${required}: the server does not offer TLS, which sslmode=require demands; ` +
        `turn ssl on in the server, or use sslmode=prefer (TLS if there is any) or disable\n`,
    );
    const bad = await runCli(["coverage", "--catalog", `${db.dsn}?sslmode=no-verify`]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.equal(
      bad.stderr,
      `bronze: --catalog sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, got "no-verify" (node-postgres's no-verify is libpq's require)\n`,
    );
  } finally {
    await db.drop();
  }
});

Deno.test("sslPlan: the SSL parameters leave the connection string (node-postgres never sees them); PGSSLMODE stands in for an absent sslmode", () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  const p = sslPlan("postgres://u:pw@h:5432/db?sslmode=require&application_name=x", env({}));
  assert.equal(p.connectionString, "postgres://u:pw@h:5432/db?application_name=x");
  assert.deepEqual([p.mode, p.first, p.fallback], [
    "require",
    { rejectUnauthorized: false },
    undefined,
  ]);
  const d = sslPlan("postgres://h/db", env({ PGSSLMODE: "disable" }));
  assert.deepEqual([d.mode, d.first, d.fallback], ["disable", false, undefined]);
  const pref = sslPlan("postgres://h/db", env({}));
  assert.deepEqual([pref.mode, pref.first, pref.fallback], [
    "prefer",
    { rejectUnauthorized: false },
    false,
  ]);
  assert.equal(
    sslPlan("postgres://h/db?sslmode=disable", env({ PGSSLMODE: "require" })).mode,
    "disable",
  );
});
