/**
 * ObjectStore over `gs://bucket/prefix` (Google Cloud Storage).
 *
 * The version token is the object's generation; conditional writes and deletes are GCS
 * preconditions (`ifGenerationMatch`, 0 meaning "absent"), checked atomically by the server (for
 * a resumable upload, when it completes).
 *
 * The library's own retries are off (`autoRetry: false`): openStore wraps this store in the one
 * retry policy (retrying.ts), which decides what is transient for every store alike, bounds the
 * whole by --retry-for, counts every retry, and resolves a write whose answer was lost (a retried
 * create that meets 412 compares the object with ours). Left on, the library would retry inside
 * each of our attempts (4 × ours) and, for unconditional deletes, turn retries off client-wide.
 * The library takes no abort signal: an attempt past its deadline is abandoned by the retrying
 * layer (all our writes are conditional, so a late one cannot overwrite anything), and a stream
 * is destroyed once that is safe (endWhenPiped). A request abandoned for want of an answer is
 * closed by the library's own deadline (a minute; not ours, since for an upload it also counts
 * the time the body takes to send), whose error is a timeout like ours.
 *
 * The client library takes ~0.9 s to load, so it is imported on first use, not when this module
 * loads: most runs never touch GCS. (A string-literal `import()` still gets bundled by `deno
 * compile`.)
 */
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import type { Bucket, File, Storage } from "@google-cloud/storage";
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

/** Above this, `{ file }` uploads are resumable (restartable per chunk) instead of one request. */
const RESUMABLE_ABOVE = 8 << 20;

export interface GcsOptions {
  /** Custom endpoint such as an emulator (then requests are unauthenticated). */
  apiEndpoint?: string;
  projectId?: string;
}

/**
 * STORAGE_EMULATOR_HOST selects an emulator (the client library honours it too); credentials
 * otherwise come from Google's usual chain (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata).
 */
export function gcsOptionsFromEnv(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): GcsOptions {
  const emulator = env.STORAGE_EMULATOR_HOST || undefined;
  return {
    apiEndpoint: emulator,
    // An emulator has no credentials to derive a project from, and the client may ask for one.
    projectId: env.GOOGLE_CLOUD_PROJECT || (emulator ? "bronze-test" : undefined),
  };
}

export class GcsStore implements ObjectStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly #options: GcsOptions;
  /** The client, created (and its library loaded) on first use. */
  #storage?: Promise<Storage>;

  /** `location` as the settings (or openStore) parsed it. */
  constructor(location: BucketUrl, options: GcsOptions = gcsOptionsFromEnv()) {
    ({ bucket: this.bucket, prefix: this.prefix, url: this.url } = location);
    this.#options = options;
  }

  #bucket(): Promise<Bucket> {
    this.#storage ??= (async () => {
      const [{ Storage }, { passCutAnswersOn }] = await Promise.all([
        import("@google-cloud/storage"),
        import("./_gcs_cut_answers.ts"),
      ]);
      passCutAnswersOn();
      const { apiEndpoint, projectId } = this.#options;
      // One retry policy, ours (see the top of this file).
      const storage = new Storage({ apiEndpoint, projectId, retryOptions: { autoRetry: false } });
      // The library reads STORAGE_EMULATOR_HOST from the process at construction and lets it win
      // over apiEndpoint for its JSON API calls: the endpoint this store was given is the one it
      // talks to, whatever the process environment says by then.
      if (apiEndpoint) storage.baseUrl = `${storage.apiEndpoint}/storage/v1`; // as sanitized
      return storage;
    })().catch((e) => {
      this.#storage = undefined; // let a later call try again
      throw e;
    });
    return this.#storage.then((storage) => storage.bucket(this.bucket));
  }

  /** `gs://bucket/prefix/key`: how errors name the object. */
  objectUrl(key: string): string {
    return `gs://${this.bucket}/${this.prefix}${key}`;
  }

  async #file(key: string, generation?: string): Promise<File> {
    const name = this.prefix + checkKey(this.url, key);
    return (await this.#bucket()).file(
      name,
      generation === undefined ? undefined : { generation: Number(generation) },
    );
  }

  async get(key: string, call?: CallOptions): Promise<Uint8Array> {
    const got = await this.getVersioned(key, call);
    if (got === null) throw new NotFoundError(this.objectUrl(key));
    return got.data;
  }

  async getVersioned(key: string, _call?: CallOptions): Promise<VersionedObject | null> {
    // Read the generation, then download exactly that generation, so bytes and token agree even
    // when a writer replaces the object in between (then the old generation is gone: re-read).
    for (let attempt = 0;; attempt++) {
      const info = await this.head(key);
      if (info === null) return null;
      try {
        const [data] = await (await this.#file(key, info.version)).download();
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        if (bytes.byteLength !== info.size) {
          throw new TruncatedBodyError(bytes.byteLength, info.size);
        }
        return { data: bytes, version: info.version };
      } catch (e) {
        if (code(e) === 404 && attempt < 3) continue;
        throw storeError("gcs download", this.objectUrl(key), e);
      }
    }
  }

  async getStream(key: string, read: ReadOptions = {}): Promise<ReadableStream<Uint8Array>> {
    // Fail here, not mid-stream, when the object is missing.
    let version = read.version;
    if (version === undefined) {
      const info = await this.head(key);
      if (info === null) throw new NotFoundError(this.objectUrl(key));
      version = info.version;
    }
    const stream = (await this.#file(key, version)).createReadStream(
      read.offset ? { start: read.offset } : {},
    );
    const end = endWhenPiped(stream);
    read.signal?.addEventListener("abort", end, { once: true });
    // The request starts at the first read, so its failures come from the stream: named here. A
    // pinned generation that is gone (404) means the object was replaced or deleted meanwhile.
    const url = this.objectUrl(key);
    // Node's async iterator, not Readable.toWeb: that adapter enqueues data still in flight after
    // the web stream is cancelled (a resumed read drops a cut one), an uncaught TypeError.
    const chunks = stream[Symbol.asyncIterator]();
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await chunks.next();
          if (done) controller.close();
          else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
        } catch (e) {
          if (code(e) === 404) {
            throw read.version === undefined
              ? new NotFoundError(url)
              : new PreconditionFailedError(url);
          }
          throw storeError("gcs download", url, e);
        }
      },
      cancel() {
        end(); // a pending next() then settles, and its enqueue goes nowhere
      },
    });
  }

  async head(key: string, _call?: CallOptions): Promise<ObjectInfo | null> {
    try {
      const [md] = await (await this.#file(key)).getMetadata();
      return info(key, md, this.objectUrl(key));
    } catch (e) {
      if (code(e) === 404) return null;
      throw storeError("gcs getMetadata", this.objectUrl(key), e);
    }
  }

  async putIfAbsent(
    key: string,
    data: Uint8Array | { file: string },
    _call?: CallOptions,
  ): Promise<"created" | "exists"> {
    try {
      await this.#put(key, data, 0);
      return "created";
    } catch (e) {
      if (code(e) === 412) return "exists";
      throw storeError("gcs upload", this.objectUrl(key), e);
    }
  }

  async putIfVersion(
    key: string,
    data: Uint8Array | { file: string },
    ifVersion: string | null,
    _call?: CallOptions,
  ): Promise<string> {
    // An empty token matches no object; Number("") is 0, which would mean "only if absent".
    if (ifVersion === "") throw new PreconditionFailedError(this.objectUrl(key));
    try {
      return await this.#put(key, data, ifVersion === null ? 0 : Number(ifVersion));
    } catch (e) {
      if (code(e) === 412) throw new PreconditionFailedError(this.objectUrl(key));
      throw storeError("gcs upload", this.objectUrl(key), e);
    }
  }

  /** A retry after a lost success answer finds the object gone, which is success here. */
  async delete(key: string, ifVersion?: string, _call?: CallOptions): Promise<void> {
    if (ifVersion === "") throw new PreconditionFailedError(this.objectUrl(key));
    try {
      const file = await this.#file(key);
      await file.delete(ifVersion === undefined ? {} : { ifGenerationMatch: ifVersion });
    } catch (e) {
      if (code(e) === 404) return;
      if (code(e) === 412) throw new PreconditionFailedError(this.objectUrl(key));
      throw storeError("gcs delete", this.objectUrl(key), e);
    }
  }

  /** Uploads under `ifGenerationMatch` and returns the new generation. */
  async #put(key: string, data: Uint8Array | { file: string }, ifGenerationMatch: number) {
    const file = await this.#file(key);
    const preconditionOpts = { ifGenerationMatch };
    const contentType = "application/octet-stream";
    if (data instanceof Uint8Array) {
      await file.save(data, { resumable: false, preconditionOpts, contentType });
    } else {
      const { size } = await stat(data.file);
      await (await this.#bucket()).upload(data.file, {
        destination: file,
        resumable: size > RESUMABLE_ABOVE,
        preconditionOpts,
        contentType,
      });
    }
    return String(file.metadata.generation);
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    checkPrefix(this.url, prefix);
    const bucket = await this.#bucket();
    let pageToken: string | undefined;
    do {
      let files: File[], next: { pageToken?: string } | null;
      try {
        [files, next] = await bucket.getFiles({
          prefix: this.prefix + prefix,
          autoPaginate: false,
          pageToken,
          // startOffset is inclusive: the key itself is skipped below.
          ...(opts.startAfter === undefined ? {} : { startOffset: this.prefix + opts.startAfter }),
        }) as unknown as [File[], { pageToken?: string } | null];
      } catch (e) {
        throw storeError("gcs list", this.objectUrl(prefix), e);
      }
      for (const f of files) {
        const key = f.name.slice(this.prefix.length);
        if (opts.startAfter !== undefined && key <= opts.startAfter) continue;
        yield info(key, f.metadata, this.objectUrl(key));
      }
      pageToken = next?.pageToken;
    } while (pageToken);
  }
}

/**
 * `modified` is timeCreated: when this generation, these bytes, was published. (`updated` also
 * moves when only metadata changes; for a new generation the two are equal.) A missing time is
 * an error, never a default: an object of unknown age must not look old to gc.
 */
function info(
  key: string,
  md: { size?: string | number; generation?: string | number; timeCreated?: string },
  url: string,
): ObjectInfo {
  const modified = new Date(md.timeCreated ?? NaN);
  if (Number.isNaN(modified.getTime())) {
    throw new BronzeError(`${url}: the server reported no timeCreated`);
  }
  return { key, size: Number(md.size ?? 0), version: String(md.generation), modified };
}

/**
 * How a download nobody waits for any more (an attempt past its deadline, a cancelled read) is
 * ended. The library pipes the response into `stream` when its headers arrive, and if `stream` is
 * destroyed by then it throws from its own event handler, where nobody can catch it (Node's
 * ERR_STREAM_UNABLE_TO_PIPE; under Deno "k is not a constructor", which ended runs behind a slow
 * network with exit 70). So a stream whose request is out is destroyed only once its response
 * has been piped in, on the microtask after the library's synchronous `response` handling; one
 * not yet requested (the request starts at the first read) or already piped, at once. A request
 * that fails instead, the library destroys itself.
 */
function endWhenPiped(stream: Readable): () => void {
  let requested = false;
  let piped = false;
  let wanted = false;
  stream.once("reading", () => requested = true);
  stream.once("response", () =>
    queueMicrotask(() => {
      piped = true;
      if (wanted) stream.destroy();
    }));
  return () => {
    wanted = true;
    if (!requested || piped) stream.destroy();
  };
}

function code(e: unknown): unknown {
  return (e as { code?: unknown })?.code;
}
