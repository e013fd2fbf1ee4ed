/**
 * The one place that decides what is transient: each shape a layer reports a failure in (Node's
 * and Deno's system errors, the AWS SDK's, the GCS library's, JSON-RPC's, ours), read through the
 * `cause` chain a wrapper adds. The real errors of real servers meet it in tests/blob/faults_test.ts.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { BronzeError } from "../../lib/runtime/errors.ts";
import {
  AttemptTimeoutError,
  BadResponseError,
  HttpStatusError,
  NetworkError,
  transientReason,
  TruncatedBodyError,
} from "../../lib/runtime/transient.ts";

/** The AWS SDK's service error: the S3 error code as `name`, the status in `$metadata`. */
function s3Error(name: string, status: number) {
  return Object.assign(new Error(`${name} from S3`), {
    name,
    $metadata: { httpStatusCode: status },
  });
}

/** The GCS library's ApiError: the status as a numeric `code`, the JSON API's reasons beside it. */
function gcsError(code: number, reason?: string) {
  return Object.assign(new Error(`${reason ?? code} from GCS`), {
    code,
    errors: reason ? [{ domain: "global", reason, message: reason }] : [],
  });
}

/** node-fetch 2's FetchError (the GCS library's HTTP client): what went wrong as its `type`. */
function fetchError(message: string, type: string) {
  return Object.assign(new Error(message), { name: "FetchError", type });
}

Deno.test("transient: what asking again may fix, by reason", () => {
  const cases: [unknown, string | null][] = [
    // The services asking us to slow down.
    [s3Error("SlowDown", 503), "throttled"],
    [s3Error("ThrottlingException", 400), "throttled"],
    [gcsError(429, "rateLimitExceeded"), "throttled"],
    [gcsError(403, "userRateLimitExceeded"), "throttled"],
    [new HttpStatusError(429, "Too Many Requests"), "throttled"],
    // The services failing this request.
    [s3Error("InternalError", 500), "server"],
    [s3Error("ServiceUnavailable", 503), "server"],
    [s3Error("Unknown", 502), "server"], // an HTML error page from a proxy: the status says it
    [gcsError(503, "backendError"), "server"],
    [gcsError(500), "server"],
    [new HttpStatusError(504, "Gateway Timeout"), "server"],
    [{ code: -32603, message: "internal error" }, "server"], // JSON-RPC, server side
    // No answer in time.
    [s3Error("RequestTimeout", 400), "timeout"],
    [new HttpStatusError(408, "Request Timeout"), "timeout"],
    [gcsError(408), "timeout"],
    [new AttemptTimeoutError(60_000), "timeout"],
    [Object.assign(new Error("connect ETIMEDOUT"), { code: "ETIMEDOUT" }), "timeout"],
    // node-fetch inside the GCS library: its own deadline (a minute by default) for an answer.
    [fetchError("network timeout at: http://x/upload", "request-timeout"), "timeout"],
    [fetchError("Response timeout while trying to fetch http://x", "body-timeout"), "timeout"],
    // The network.
    [Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }), "connection"],
    [Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }), "connection"],
    [Object.assign(new Error("getaddrinfo EAI_AGAIN x"), { code: "EAI_AGAIN" }), "connection"],
    [new NetworkError("connection refused", "connection"), "connection"],
    // A body cut midway.
    [Object.assign(new Error("aborted"), { code: "ECONNRESET" }), "truncated"],
    [new TruncatedBodyError(10, 20), "truncated"],
    [new NetworkError("error reading a body", "truncated"), "truncated"],
    // A network filesystem's passing trouble.
    [Object.assign(new Error("Stale file handle (os error 116)"), { code: "ESTALE" }), "io"],
    // An RPC node's garbage.
    [new BadResponseError("response is not JSON"), "bad_response"],
    // Final: asking again cannot help.
    [s3Error("NoSuchKey", 404), null],
    [s3Error("AccessDenied", 403), null],
    [s3Error("PreconditionFailed", 412), null],
    [s3Error("NotImplemented", 501), null],
    [gcsError(404), null],
    [gcsError(412, "conditionNotMet"), null],
    [new HttpStatusError(400, "Bad Request"), null],
    [{ code: -32602, message: "invalid params" }, null], // JSON-RPC, our request is wrong
    [Object.assign(new Error("No space left on device"), { code: "ENOSPC" }), null],
    [Object.assign(new Error("getaddrinfo ENOTFOUND x"), { code: "ENOTFOUND" }), null],
    [new BronzeError("object not found: s3://b/k"), null],
    [new TypeError("x is not a function"), null],
    [undefined, null],
    ["a string", null],
  ];
  for (const [err, want] of cases) {
    assert.equal(
      transientReason(err)?.reason ?? null,
      want,
      String((err as Error)?.message ?? err),
    );
  }
});

Deno.test("transient: a wrapper's cause is looked through; Retry-After is kept", () => {
  const wrapped = new BronzeError("s3 GetObject s3://b/k failed: SlowDown");
  (wrapped as { cause?: unknown }).cause = s3Error("SlowDown", 503);
  assert.equal(transientReason(wrapped)?.reason, "throttled");
  assert.deepEqual(transientReason(new HttpStatusError(503, "", 7000)), {
    reason: "server",
    retryAfterMs: 7000,
  });
});

Deno.test("transient: a real refused connection is a connection failure", async () => {
  // A port nobody listens on: bind one, learn it, close it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const err = await new Promise<unknown>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("error", resolve);
    socket.once("connect", () => {
      socket.destroy();
      resolve(null);
    });
  });
  assert.ok(err, "the connection was refused");
  assert.equal(transientReason(err)?.reason, "connection");
});

/** node-postgres's server error: the SQLSTATE as `code`. */
function pgError(code: string, message: string) {
  return Object.assign(new Error(message), { code, severity: "FATAL" });
}

Deno.test("transient: a PostgreSQL catalog going away (a restart, a failover) is asked again; what it refused is not", () => {
  const cases: [unknown, string | null][] = [
    [pgError("57P01", "terminating connection due to administrator command"), "connection"],
    [
      pgError("57P02", "terminating connection because of crash of another server process"),
      "connection",
    ],
    [pgError("57P03", "the database system is starting up"), "connection"],
    [pgError("08006", "connection failure"), "connection"],
    [pgError("53300", "sorry, too many clients already"), "connection"],
    [new Error("Connection terminated unexpectedly"), "connection"],
    [new Error("Client has encountered a connection error and is not queryable"), "connection"],
    [new Error("timeout exceeded when trying to connect"), "timeout"],
    // Refusals: asking again cannot help.
    [pgError("23505", "duplicate key value violates unique constraint"), null],
    [pgError("42501", "permission denied for table _meta_lineage"), null],
    [pgError("3D000", 'database "bronze" does not exist'), null],
    [pgError("28P01", "password authentication failed"), null],
  ];
  for (const [err, reason] of cases) {
    assert.equal(transientReason(err)?.reason ?? null, reason, (err as Error).message);
  }
  // Wrapped as bronze's one line, the driver's error is still found through `cause`.
  const wrapped = Object.assign(
    new BronzeError("catalog x: the database system is shutting down"),
    {
      cause: pgError("57P03", "the database system is shutting down"),
    },
  );
  assert.equal(transientReason(wrapped)?.reason, "connection");
  // A retry that gave up is final, whatever it gave up on: no outer loop tries it again.
  const gaveUp = Object.assign(new BronzeError("... outlasted --catalog-retry-for"), {
    final: true,
    cause: pgError("57P01", "terminating connection due to administrator command"),
  });
  assert.equal(transientReason(gaveUp), null);
});
