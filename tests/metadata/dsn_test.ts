/** lib/metadata/dsn.ts: a catalog DSN's password is never printed, whatever shape it comes in. */
import assert from "node:assert/strict";
import { redactDsn, scrubSecret, validateDsn } from "../../lib/metadata/dsn.ts";

Deno.test("redactDsn: a URL's password becomes ***, everything else stays; a keyword DSN's too", () => {
  assert.equal(
    redactDsn("postgres://bronze:s3cret@db:5432/lake?sslmode=require"),
    "postgres://bronze:***@db:5432/lake?sslmode=require",
  );
  assert.equal(redactDsn("postgres://bronze@db/lake"), "postgres://bronze@db/lake");
  assert.equal(redactDsn("postgres://db/lake"), "postgres://db/lake");
  assert.equal(
    redactDsn("host=db user=bronze password=s3cret dbname=lake"),
    "host=db user=bronze password=*** dbname=lake",
  );
  assert.equal(redactDsn("host=db PASSWORD = s3cret"), "host=db PASSWORD = ***");
});

Deno.test("scrubSecret: the DSN, its password and the password's URL encoding are scrubbed from any text", () => {
  const dsn = "postgres://bronze:p%40ss%2Fw0rd@db:5432/lake";
  const text = `connect ${dsn} failed: password "p@ss/w0rd" rejected (raw p%40ss%2Fw0rd)`;
  const scrubbed = scrubSecret(text, dsn);
  assert.equal(
    scrubbed,
    'connect postgres://bronze:***@db:5432/lake failed: password "***" rejected (raw ***)',
  );
  assert.doesNotMatch(scrubbed, /p@ss|p%40ss/);
  assert.equal(
    scrubSecret("auth failed for password=hunter2 at db", "host=db password=hunter2"),
    "auth failed for password=*** at db",
  );
  assert.equal(scrubSecret("nothing secret here", undefined), "nothing secret here");
  assert.equal(scrubSecret("no password in it", "postgres://db/lake"), "no password in it");
});

Deno.test("validateDsn: only a well-formed postgres URL is echoed, redacted; anything else is not shown", () => {
  assert.equal(validateDsn("postgres://bronze:s3cret@db:5432/lake", "--catalog"), undefined);
  assert.equal(validateDsn("postgresql://db/lake", "--catalog"), undefined);
  const notShown = "(value not shown: it may contain a password)";
  assert.equal(
    validateDsn("host=db password=s3cret", "--catalog"),
    `--catalog is not a valid URL; expected postgres://user:password@host:5432/database ${notShown}`,
  );
  assert.equal(
    validateDsn("mysql://bronze:s3cret@db/lake", "--catalog"),
    `--catalog must be a postgres:// or postgresql:// URL ${notShown}`,
  );
  // A socket-only URL (libpq's default host): bronze needs a host, and says which URL lacks one.
  assert.equal(
    validateDsn("postgres:///lake", "--catalog"),
    "--catalog has no host: postgres:///lake",
  );
  for (const dsn of ["host=db password=s3cret", "mysql://bronze:s3cret@db/lake"]) {
    assert.doesNotMatch(validateDsn(dsn, "--catalog") ?? "", /s3cret/);
  }
});
