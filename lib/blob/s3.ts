/**
 * ObjectStore over `s3://bucket/prefix`, for AWS S3 and S3-compatible services (B2, R2, MinIO).
 *
 * Conditional writes use S3's own preconditions (`If-None-Match: *`, `If-Match: <etag>`), so they
 * are atomic on the server. A service that ignores those headers would silently overwrite; AWS, R2
 * and current MinIO honour them. Conditional deletes (`If-Match` on DeleteObject) are newer: AWS
 * general purpose buckets honour them since September 2025; a service that ignores the header
 * deletes whatever version is there (s3rver does), so check yours before trusting gc to it.
 *
 * `{ file }` uploads are one streamed PutObject with a known Content-Length: nothing is held in
 * memory, and the object may be up to S3's single-PUT limit of 5 GiB (partitions are far smaller).
 * Multipart upload cannot be conditional on every S3-compatible service, hence not used.
 *
 * The SDK's own retries are off (`maxAttempts: 1`): openStore wraps this store in the one retry
 * policy (retrying.ts), which decides what is transient for every store alike, bounds the whole by
 * --retry-for and counts every retry. Left on, the SDK would retry inside each of our attempts
 * (3 × ours), past our per-attempt deadline, unseen by the metrics, and it cannot resend a
 * streamed body anyway. Each call takes our attempt's signal, so an abandoned request is aborted.
 *
 * The SDK takes ~0.6 s to load, so it is imported on first use, not when this module loads: most
 * runs never touch S3. (A string-literal `import()` still gets bundled by `deno compile`.)
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { S3Client } from "@aws-sdk/client-s3";
import { BronzeError } from "../runtime/errors.ts";
import { TruncatedBodyError } from "../runtime/transient.ts";
import { checkKey, checkPrefix, storeError } from "./keys.ts";
import type { BucketUrl } from "./url.ts";
import {
  type CallOptions,
  type ListOptions,
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  PreconditionFailedError,
  type ReadOptions,
  type VersionedObject,
} from "./store.ts";

export interface S3Options {
  /** Custom endpoint (B2, R2, MinIO, a test server); AWS's own when absent. */
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  /** Explicit keys; when absent the SDK's default chain (env, profile, SSO, IMDS...) applies. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/**
 * Reads AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), AWS_REGION (default us-east-1) and
 * S3_FORCE_PATH_STYLE ("true"/"1"); AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
 * when both are set, which is what the SDK's chain would pick first anyway.
 */
export function s3OptionsFromEnv(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): S3Options {
  const opts: S3Options = {
    endpoint: env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined,
    region: env.AWS_REGION || "us-east-1",
    forcePathStyle: ["true", "1"].includes((env.S3_FORCE_PATH_STYLE ?? "").toLowerCase()),
  };
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    opts.credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  return opts;
}

export class S3Store implements ObjectStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly #options: S3Options;
  /** The SDK and client, loaded and created on first use. */
  #s3?: Promise<{ sdk: S3Sdk; client: S3Client }>;

  /** `location` as the settings (or openStore) parsed it. */
  constructor(location: BucketUrl, options: S3Options = s3OptionsFromEnv()) {
    ({ bucket: this.bucket, prefix: this.prefix, url: this.url } = location);
    this.#options = options;
  }

  #client(): Promise<{ sdk: S3Sdk; client: S3Client }> {
    return this.#s3 ??= (async () => {
      const sdk = await import("@aws-sdk/client-s3");
      const options = this.#options;
      const client = new sdk.S3Client({
        endpoint: options.endpoint,
        region: options.region,
        forcePathStyle: options.forcePathStyle,
        credentials: options.credentials,
        // The SDK's default CRC trailers make some S3-compatible servers store streamed bodies
        // with the trailer mixed in; send and check checksums only where S3 requires them.
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
        maxAttempts: 1, // one retry policy, ours (see the top of this file)
        logger: quietLogger,
      });
      return { sdk, client };
    })().catch((e) => {
      this.#s3 = undefined; // let a later call try again
      throw e;
    });
  }

  /** `s3://bucket/prefix/key`: how errors name the object. */
  objectUrl(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  #key(key: string): string {
    return this.prefix + checkKey(this.url, key);
  }

  async get(key: string, call?: CallOptions): Promise<Uint8Array> {
    const got = await this.getVersioned(key, call);
    if (got === null) throw new NotFoundError(this.objectUrl(key));
    return got.data;
  }

  async getVersioned(key: string, call: CallOptions = {}): Promise<VersionedObject | null> {
    try {
      const Key = this.#key(key);
      const { sdk, client } = await this.#client();
      const out = await client.send(
        new sdk.GetObjectCommand({ Bucket: this.bucket, Key }),
        { abortSignal: call.signal },
      );
      const data = await out.Body!.transformToByteArray();
      // A body cut short without an error from the transport is still cut: read it again.
      if (out.ContentLength !== undefined && data.byteLength !== out.ContentLength) {
        throw new TruncatedBodyError(data.byteLength, out.ContentLength);
      }
      return { data, version: out.ETag ?? "" };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw storeError("s3 GetObject", this.objectUrl(key), e);
    }
  }

  async getStream(key: string, read: ReadOptions = {}): Promise<ReadableStream<Uint8Array>> {
    try {
      const Key = this.#key(key);
      const { sdk, client } = await this.#client();
      const out = await client.send(
        new sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key,
          ...(read.version === undefined ? {} : { IfMatch: read.version }),
          ...(read.offset ? { Range: `bytes=${read.offset}-` } : {}),
        }),
        { abortSignal: read.signal },
      );
      return out.Body!.transformToWebStream() as ReadableStream<Uint8Array>;
    } catch (e) {
      if (isNotFound(e)) throw new NotFoundError(this.objectUrl(key));
      if (isPreconditionFailed(e)) throw new PreconditionFailedError(this.objectUrl(key));
      throw storeError("s3 GetObject", this.objectUrl(key), e);
    }
  }

  async head(key: string, call: CallOptions = {}): Promise<ObjectInfo | null> {
    try {
      const Key = this.#key(key);
      const { sdk, client } = await this.#client();
      const out = await client.send(
        new sdk.HeadObjectCommand({ Bucket: this.bucket, Key }),
        { abortSignal: call.signal },
      );
      return {
        key,
        size: out.ContentLength ?? 0,
        version: out.ETag ?? "",
        modified: wholeSeconds(out.LastModified, this.objectUrl(key)),
      };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw storeError("s3 HeadObject", this.objectUrl(key), e);
    }
  }

  async putIfAbsent(
    key: string,
    data: Uint8Array | { file: string },
    call: CallOptions = {},
  ): Promise<"created" | "exists"> {
    try {
      await this.#put(key, data, { IfNoneMatch: "*" }, call.signal);
      return "created";
    } catch (e) {
      // 409 ConditionalRequestConflict: a concurrent conditional write to the key is in flight;
      // whoever wins, an object is (about to be) there, so the caller compares as for "exists".
      if (isPreconditionFailed(e) || errorName(e) === "ConditionalRequestConflict") return "exists";
      throw storeError("s3 PutObject", this.objectUrl(key), e);
    }
  }

  async putIfVersion(
    key: string,
    data: Uint8Array | { file: string },
    ifVersion: string | null,
    call: CallOptions = {},
  ): Promise<string> {
    // An empty token matches no object: refuse it rather than leave `If-Match: ""` to the service.
    if (ifVersion === "") throw new PreconditionFailedError(this.objectUrl(key));
    try {
      const out = await this.#put(
        key,
        data,
        ifVersion === null ? { IfNoneMatch: "*" } : { IfMatch: ifVersion },
        call.signal,
      );
      return out.ETag ?? "";
    } catch (e) {
      if (
        isPreconditionFailed(e) || errorName(e) === "ConditionalRequestConflict" ||
        (ifVersion !== null && isNotFound(e)) // If-Match on a deleted object
      ) throw new PreconditionFailedError(this.objectUrl(key));
      throw storeError("s3 PutObject", this.objectUrl(key), e);
    }
  }

  async delete(key: string, ifVersion?: string, call: CallOptions = {}): Promise<void> {
    if (ifVersion === "") throw new PreconditionFailedError(this.objectUrl(key));
    try {
      const Key = this.#key(key);
      const { sdk, client } = await this.#client();
      await client.send(
        new sdk.DeleteObjectCommand({
          Bucket: this.bucket,
          Key,
          ...(ifVersion === undefined ? {} : { IfMatch: ifVersion }),
        }),
        { abortSignal: call.signal },
      );
    } catch (e) {
      // AWS answers 404 NoSuchKey to an If-Match delete of an absent object (204 without one).
      if (isNotFound(e)) return;
      if (isPreconditionFailed(e) || errorName(e) === "ConditionalRequestConflict") {
        throw new PreconditionFailedError(this.objectUrl(key));
      }
      throw storeError("s3 DeleteObject", this.objectUrl(key), e);
    }
  }

  async #put(
    key: string,
    data: Uint8Array | { file: string },
    condition: { IfNoneMatch: string } | { IfMatch: string },
    abortSignal?: AbortSignal,
  ) {
    const common = { Bucket: this.bucket, Key: this.#key(key), ...condition };
    const { sdk, client } = await this.#client();
    if (data instanceof Uint8Array) {
      return await client.send(new sdk.PutObjectCommand({ ...common, Body: data }), {
        abortSignal,
      });
    }
    const { size } = await stat(data.file);
    const body = createReadStream(data.file);
    try {
      return await client.send(
        new sdk.PutObjectCommand({ ...common, Body: body, ContentLength: size }),
        { abortSignal },
      );
    } finally {
      body.destroy();
    }
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    checkPrefix(this.url, prefix);
    let token: string | undefined;
    do {
      let out;
      try {
        const { sdk, client } = await this.#client();
        out = await client.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
            // Only on the first page: the token carries the position after that.
            ...(token === undefined && opts.startAfter !== undefined
              ? { StartAfter: this.prefix + opts.startAfter }
              : {}),
          }),
          { abortSignal: opts.signal },
        );
      } catch (e) {
        throw storeError("s3 ListObjectsV2", this.objectUrl(prefix), e);
      }
      for (const o of out.Contents ?? []) {
        const key = o.Key!.slice(this.prefix.length);
        yield {
          key,
          size: o.Size ?? 0,
          version: o.ETag ?? "",
          modified: wholeSeconds(o.LastModified, this.objectUrl(key)),
        };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async close(): Promise<void> {
    if (this.#s3 === undefined) return; // never used: nothing to close, and no SDK to load
    let client: S3Client;
    try {
      ({ client } = await this.#s3);
    } catch {
      return; // the SDK failed to load: no client was made
    }
    client.destroy(); // closes the keep-alive sockets
  }
}

type S3Sdk = typeof import("@aws-sdk/client-s3");

/**
 * Given a logger, the SDK logs every failed command to it (404s of head() included), and without
 * one it still warns on the console whenever a streamed upload fails, the expected 412 of a
 * put-if-absent on an existing partition included. Every failure reaches our caller as an error
 * naming the object, so the SDK's own reports are dropped; other warnings still get through.
 */
const quietLogger = {
  trace() {},
  debug() {},
  info() {},
  warn(...args: unknown[]) {
    if (!String(args[0]).includes("non-retryable streaming request")) console.warn(...args);
  },
  error() {},
};

/**
 * HeadObject's Last-Modified header has whole seconds; a listing may carry milliseconds (AWS
 * sends .000, others need not). Truncated, head and list agree on every server. A missing time
 * is an error, never a default: an object of unknown age must not look old to gc.
 */
function wholeSeconds(date: Date | undefined, url: string): Date {
  const ms = date?.getTime();
  if (ms === undefined || Number.isNaN(ms)) {
    throw new BronzeError(`${url}: the server reported no LastModified`);
  }
  return new Date(Math.floor(ms / 1000) * 1000);
}

function errorName(e: unknown): string | undefined {
  return (e as { name?: string })?.name;
}

function httpStatus(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isNotFound(e: unknown): boolean {
  const name = errorName(e);
  if (name === "NoSuchBucket") return false; // a configuration error, not a missing object
  return name === "NoSuchKey" || name === "NotFound" || httpStatus(e) === 404;
}

function isPreconditionFailed(e: unknown): boolean {
  return errorName(e) === "PreconditionFailed" || httpStatus(e) === 412;
}
