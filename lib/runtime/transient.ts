/**
 * What is transient: the ONE place that decides, for every object store (file, gs, s3), the RPC
 * source and the catalog. A failure is transient when asking again, a little later, may succeed
 * and cannot do harm: the network dropped (reset, refused, unreachable, a body cut midway), the
 * other side took too long, it said "later" (408, 429, 5xx, S3 SlowDown / InternalError /
 * RequestTimeout, GCS rateLimitExceeded / backendError), or a network filesystem hiccuped (NFS's
 * ESTALE / EIO, a FUSE mount's ENOTCONN). Everything else (a missing object, a refused
 * precondition, bad credentials, a full disk) is final: retrying would only delay the one line.
 *
 * Errors are recognised by shape, whichever layer wrapped them (the `cause` chain is followed):
 * Node and Deno system errors carry `code`; the AWS SDK's carry `name` and
 * `$metadata.httpStatusCode`; the GCS library's ApiError carries a numeric `code` and
 * `errors[].reason`; a JSON-RPC error object carries a numeric `code`; ours are the classes below.
 */

/** Why an attempt is retried: a `bronze_retries_total` label, so a small fixed set. */
export type TransientReason =
  | "throttled" // 429, SlowDown, rateLimitExceeded: the service asks us to slow down
  | "server" // 5xx, InternalError, backendError: the service failed this request
  | "timeout" // no answer in time: our deadline, a socket timeout, 408, RequestTimeout
  | "connection" // reset, refused, unreachable, DNS not answering
  | "truncated" // a body cut midway (fewer bytes than announced)
  | "bad_response" // an answer that is not what the call returns (an RPC node's garbage)
  | "io"; // a network filesystem's transient error (ESTALE, EIO, ENOTCONN)

export const TRANSIENT_REASONS: readonly TransientReason[] = [
  "throttled",
  "server",
  "timeout",
  "connection",
  "truncated",
  "bad_response",
  "io",
];

export interface Transient {
  reason: TransientReason;
  /** The service's own Retry-After, when it gave one (ms). */
  retryAfterMs?: number;
}

/** An HTTP answer that is not a success, as our own HTTP clients (RPC) report it. */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    statusText: string,
    /** Retry-After, in ms (0 when absent). */
    readonly retryAfterMs = 0,
  ) {
    super(`HTTP ${status}${statusText ? ` ${statusText}` : ""}`);
    this.name = "HttpStatusError";
  }
}

/** A body that ended before the length its headers announced (the connection was cut). */
export class TruncatedBodyError extends Error {
  constructor(readonly got: number, readonly expected: number) {
    super(`the body was cut after ${got} of ${expected} bytes`);
    this.name = "TruncatedBodyError";
  }
}

/**
 * Our own HTTP clients' (fetch's) failures, which carry no code: no answer at all (refused,
 * reset, DNS, TLS: "connection"), or a body that broke off ("truncated").
 */
export class NetworkError extends Error {
  constructor(message: string, readonly reason: "connection" | "truncated") {
    super(message);
    this.name = "NetworkError";
  }
}

/** An answer that is not what the call returns (malformed JSON, the wrong shape). */
export class BadResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadResponseError";
  }
}

/** An attempt that did not settle within its deadline and was abandoned (retry.ts). */
export class AttemptTimeoutError extends Error {
  constructor(readonly ms: number) {
    super(
      `no answer within ${
        ms >= 1000 ? `${Number((ms / 1000).toFixed(1))}s` : `${Math.round(ms)}ms`
      }`,
    );
    this.name = "AttemptTimeoutError";
  }
}

/** System error codes (Node's `code`, Deno's too) of a network that may come back. */
const CONNECTION_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ENETRESET",
  "EHOSTDOWN",
  "EAI_AGAIN", // DNS did not answer (not ENOTFOUND: a misspelt host stays misspelt)
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "ERR_STREAM_PREMATURE_CLOSE",
]);
const TIMEOUT_CODES = new Set([
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);
/**
 * PostgreSQL's SQLSTATEs of a server going away or not there yet: shut down (57P01, also a
 * terminated backend; 57P02 crash; 57P03 starting up or shutting down), its connection failed
 * (class 08), too many connections for now (53300). A restart or a failover says these.
 */
const PG_CONNECTION_CODES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
  "53300",
]);
/** node-postgres names a connection lost under it only in words. */
const PG_LOST =
  /Connection terminated|connection error and is not queryable|Client was closed and is not queryable/i;

/** A network or FUSE filesystem's passing trouble (soft NFS mounts report timeouts as EIO). */
const IO_CODES = new Set(["ESTALE", "EIO", "ENOTCONN", "EAGAIN", "EINTR"]);
/** Deno's error classes, for errors that carry no `code`. */
const DENO_CONNECTION = new Set([
  "ConnectionReset",
  "ConnectionRefused",
  "ConnectionAborted",
  "BrokenPipe",
  "NotConnected",
  "UnexpectedEof",
]);

/** S3 error codes (the SDK's `name`) that say "later". */
const S3_THROTTLED = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "ProvisionedThroughputExceededException",
]);
const S3_SERVER = new Set(["InternalError", "ServiceUnavailable", "InternalFailure"]);
/** S3's 400 RequestTimeout: the socket went quiet mid-upload. */
const S3_TIMEOUT = new Set(["RequestTimeout", "RequestTimeoutException", "TimeoutError"]);
/** GCS JSON API `errors[].reason`s that say "later", whatever the status. */
const GCS_THROTTLED = new Set(["rateLimitExceeded", "userRateLimitExceeded"]);
const GCS_SERVER = new Set(["backendError", "internalError"]);
/** JSON-RPC errors that say our request is wrong: asking again cannot help. */
const JSON_RPC_CLIENT = new Set([-32700, -32600, -32601, -32602]);

/** Statuses that mean "later": 408, 429 and 5xx but 501 and 505 (those will not change). */
function byStatus(status: number): TransientReason | null {
  if (status === 429) return "throttled";
  if (status === 408) return "timeout";
  if (status >= 500 && status <= 599 && status !== 501 && status !== 505) return "server";
  return null;
}

/**
 * The transient reason of `err` (or of anything in its `cause` chain), or null when it is final.
 * Never throws.
 */
export function transientReason(err: unknown): Transient | null {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    // A retry that already gave up (retry.ts) is not retried again by an outer loop.
    if ((e as { final?: unknown }).final === true) return null;
    const found = _one(e);
    if (found) return found;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

function _one(e: unknown): Transient | null {
  if (e instanceof AttemptTimeoutError) return { reason: "timeout" };
  if (e instanceof TruncatedBodyError) return { reason: "truncated" };
  if (e instanceof BadResponseError) return { reason: "bad_response" };
  if (e instanceof NetworkError) return { reason: e.reason };
  if (e instanceof HttpStatusError) {
    const reason = byStatus(e.status);
    return reason && { reason, retryAfterMs: e.retryAfterMs };
  }
  if (typeof e !== "object") return null;
  const o = e as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    errors?: unknown;
    type?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  const name = typeof o.name === "string" ? o.name : "";
  const code = o.code;
  // JSON-RPC error objects: thrown as they came, not Errors.
  if (!(e instanceof Error) && typeof code === "number" && typeof o.message === "string") {
    if (code >= 100 && code <= 599) return _status(code);
    return JSON_RPC_CLIENT.has(code) ? null : { reason: "server" };
  }
  if (typeof code === "string") {
    if (CONNECTION_CODES.has(code)) {
      // Node's http client reports a response cut midway as ECONNRESET "aborted".
      return { reason: o.message === "aborted" ? "truncated" : "connection" };
    }
    if (TIMEOUT_CODES.has(code)) return { reason: "timeout" };
    if (IO_CODES.has(code)) return { reason: "io" };
    if (PG_CONNECTION_CODES.has(code)) return { reason: "connection" };
  }
  if (DENO_CONNECTION.has(name)) return { reason: "connection" };
  // node-fetch (the GCS library's HTTP client) past its own deadline for an answer: by its type.
  if (name === "FetchError" && /^(request|body)-timeout$/.test(String(o.type))) {
    return { reason: "timeout" };
  }
  if (name === "TimedOut") return { reason: "timeout" };
  // The AWS SDK: the service's error code is the name; the status is in $metadata.
  if (S3_THROTTLED.has(name)) return { reason: "throttled" };
  if (S3_SERVER.has(name)) return { reason: "server" };
  if (S3_TIMEOUT.has(name)) return { reason: "timeout" };
  if (name === "IncompleteBody") return { reason: "truncated" };
  const status = o.$metadata?.httpStatusCode;
  if (typeof status === "number") {
    const t = _status(status);
    if (t) return t;
  }
  // The GCS library's ApiError: the HTTP status as a numeric code, the reasons beside it.
  if (Array.isArray(o.errors)) {
    for (const r of o.errors as { reason?: unknown }[]) {
      if (GCS_THROTTLED.has(String(r?.reason))) return { reason: "throttled" };
      if (GCS_SERVER.has(String(r?.reason))) return { reason: "server" };
    }
  }
  if (typeof code === "number") return _status(code);
  // Smithy and fetch name a dropped socket only in words.
  if (typeof o.message === "string" && /socket hang up|premature close/i.test(o.message)) {
    return { reason: "connection" };
  }
  if (typeof o.message === "string" && PG_LOST.test(o.message)) return { reason: "connection" };
  // node-postgres's pool: no connection within connectionTimeoutMillis.
  if (typeof o.message === "string" && /timeout exceeded when trying to connect/i.test(o.message)) {
    return { reason: "timeout" };
  }
  return null;
}

function _status(status: number): Transient | null {
  const reason = byStatus(status);
  return reason && { reason };
}
