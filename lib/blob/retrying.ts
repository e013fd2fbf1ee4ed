/**
 * The retrying layer every store opened by openStore wears: each call of a backend (file, gs, s3)
 * goes through the one retry policy (runtime/retry.ts: backoff with full jitter, a deadline per
 * attempt, the --retry-for bound, exit 75 after it), and what is transient is decided in one place
 * (runtime/transient.ts) for every backend alike.
 *
 * What a retry must not get wrong:
 *
 * - A streamed read cut midway resumes at the byte it stopped, from the same version (the first
 *   open pins the version head() reported); one that ends short of the size is cut, not done. So
 *   a consumer sees every byte exactly once, or an error: never a truncated or a doubled stream.
 *   A stream that goes quiet for the attempt deadline is abandoned and resumed.
 * - A listing cut midway goes on after the last key it yielded (keys come in order).
 * - A write whose answer was lost may have happened. A put-if-absent retried after a transient
 *   failure that finds an object compares it with ours: identical, it was ours ("created");
 *   different, "exists" as always (the caller's existing error). A put-if-version that meets
 *   "precondition failed" looks at the object: our bytes, our write landed (its version is
 *   returned); else the precondition failure stands. It looks even when no attempt of ours failed:
 *   the runtime's HTTP client resends a request whose keep-alive connection dropped before the
 *   answer, unseen by us, so the resend's "precondition failed" may be our own first write. A
 *   delete retried finds the object gone, which a delete already counts as success.
 * - An abandoned attempt may still land later. Every write is conditional (create-if-absent, or
 *   if-version), so a late one can only fail, or write what we wrote.
 */
import { createHash } from "node:crypto";
import { Retrier, type RetryArea, withDeadline } from "../runtime/retry.ts";
import { sleep } from "../runtime/time.ts";
import { TruncatedBodyError } from "../runtime/transient.ts";
import { BronzeError } from "../runtime/errors.ts";
import { hashObject } from "./hash.ts";
import { objectUrl, storeError } from "./keys.ts";
import {
  type ListOptions,
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  PreconditionFailedError,
  type ReadOptions,
  type VersionedObject,
} from "./store.ts";

/** An upload's deadline grows with its size at this pace (a slow uplink still finishes). */
const UPLOAD_BYTES_PER_SECOND = 256 << 10;
/** Re-reads of head() when the object is replaced between it and the read's start. */
const CHANGED_WHILE_OPENING = 3;

export class RetryingStore implements ObjectStore {
  readonly url: string;
  readonly getSync?: (key: string) => Uint8Array;
  readonly listTemp?: (prefix: string, opts?: ListOptions) => AsyncIterable<ObjectInfo>;
  readonly localPath?: (key: string) => string;
  readonly localRoot?: string;

  constructor(
    readonly inner: ObjectStore,
    private readonly retry: Retrier,
    readonly area: RetryArea,
  ) {
    this.url = inner.url;
    if (inner.getSync) {
      const getSync = inner.getSync.bind(inner);
      this.getSync = (key) => retry.runSync(area, () => getSync(key), this.#what("read", key));
    }
    if (inner.listTemp) {
      const listTemp = inner.listTemp.bind(inner);
      this.listTemp = (prefix, opts) => this.#listing(prefix, opts ?? {}, listTemp);
    }
    if (inner.localPath) this.localPath = inner.localPath.bind(inner);
    this.localRoot = inner.localRoot;
  }

  #what(op: string, key: string): string {
    return `${objectUrl(this, key)}: ${op}`;
  }

  #run<T>(
    op: string,
    key: string,
    attempt: (signal: AbortSignal) => Promise<T>,
    timeoutMs?: number,
  ) {
    return this.retry.run(this.area, attempt, {
      what: this.#what(op, key),
      attemptTimeoutMs: timeoutMs,
    });
  }

  get(key: string): Promise<Uint8Array> {
    return this.#run("read", key, (signal) => this.inner.get(key, { signal }));
  }

  getVersioned(key: string): Promise<VersionedObject | null> {
    return this.#run("read", key, (signal) => this.inner.getVersioned(key, { signal }));
  }

  head(key: string): Promise<ObjectInfo | null> {
    return this.#run("head", key, (signal) => this.inner.head(key, { signal }));
  }

  async putIfAbsent(
    key: string,
    data: Uint8Array | { file: string },
  ): Promise<"created" | "exists"> {
    const tries = this.retry.begin(this.area, { what: this.#what("write", key) });
    const timeoutMs = await this.#uploadTimeout(data);
    let uncertain = false; // an earlier attempt may have written, its answer lost
    for (;;) {
      try {
        let result = await withDeadline(
          (signal) => this.inner.putIfAbsent(key, data, { signal }),
          timeoutMs,
        );
        if (result === "exists" && uncertain && await this.#holds(key, data)) result = "created";
        tries.succeeded();
        return result;
      } catch (err) {
        const wait = tries.failed(err);
        uncertain = true;
        await sleep(wait);
      }
    }
  }

  async putIfVersion(
    key: string,
    data: Uint8Array | { file: string },
    ifVersion: string | null,
  ): Promise<string> {
    const tries = this.retry.begin(this.area, { what: this.#what("write", key) });
    const timeoutMs = await this.#uploadTimeout(data);
    for (;;) {
      try {
        const version = await withDeadline(
          (signal) => this.inner.putIfVersion(key, data, ifVersion, { signal }),
          timeoutMs,
        );
        tries.succeeded();
        return version;
      } catch (err) {
        if (err instanceof PreconditionFailedError) {
          const landed = await this.#versionHolding(key, data);
          if (landed !== null) {
            tries.succeeded();
            return landed;
          }
        }
        await sleep(tries.failed(err));
      }
    }
  }

  delete(key: string, ifVersion?: string): Promise<void> {
    return this.#run("delete", key, (signal) => this.inner.delete(key, ifVersion, { signal }));
  }

  list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    return this.#listing(prefix, opts, (p, o) => this.inner.list(p, o));
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }

  /** An upload may take the attempt deadline plus its size at a slow uplink's pace. */
  async #uploadTimeout(data: Uint8Array | { file: string }): Promise<number> {
    const bytes = data instanceof Uint8Array ? data.byteLength : (await Deno.stat(data.file)).size;
    return this.retry.policy.attemptTimeoutMs + (bytes / UPLOAD_BYTES_PER_SECOND) * 1000;
  }

  /** Does the stored object hold exactly `data`? (After a write whose answer was lost.) */
  async #holds(key: string, data: Uint8Array | { file: string }): Promise<boolean> {
    return (await this.#versionHolding(key, data)) !== null;
  }

  /** The stored object's version when it holds exactly `data`, else null (absent included). */
  async #versionHolding(key: string, data: Uint8Array | { file: string }): Promise<string | null> {
    const info = await this.head(key);
    if (info === null) return null;
    const want = await digestOf(data);
    if (info.size !== want.bytes) return null;
    const stored = await hashObject(this, key);
    if (stored.sha256 !== want.sha256) return null;
    // The version the bytes were read at: a head after hashing could see a later writer's.
    const after = await this.head(key);
    return after?.version === info.version ? info.version : null;
  }

  /** A listing that goes on after its last key when it is cut (see the top of this file). */
  async *#listing(
    prefix: string,
    opts: ListOptions,
    list: (prefix: string, opts: ListOptions) => AsyncIterable<ObjectInfo>,
  ): AsyncIterable<ObjectInfo> {
    const tries = this.retry.begin(this.area, { what: this.#what("list", prefix || ".") });
    const timeoutMs = this.retry.policy.attemptTimeoutMs;
    // A listing taken again would report the same links again: once each.
    const told = new Set<string>();
    const skipped = opts.skipped &&
      ((key: string, why: string) => {
        if (!told.has(key)) opts.skipped!(key, why);
        told.add(key);
      });
    let after = opts.startAfter;
    for (;;) {
      const ac = new AbortController();
      const it = list(prefix, { startAfter: after, skipped, signal: ac.signal })[
        Symbol.asyncIterator
      ]();
      try {
        for (;;) {
          const next = await withDeadline(() => it.next(), timeoutMs);
          if (next.done) {
            tries.succeeded();
            return;
          }
          tries.succeeded();
          after = next.value.key;
          yield next.value;
        }
      } catch (err) {
        const wait = tries.failed(err);
        await sleep(wait);
      } finally {
        ac.abort();
        it.return?.()?.catch(() => {});
      }
    }
  }

  /**
   * A stream that resumes where a cut left it: the first open pins the version head() reported,
   * each resume asks for that version from the byte after the last one handed on.
   */
  async getStream(key: string, read: ReadOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const url = objectUrl(this, key);
    const timeoutMs = this.retry.policy.attemptTimeoutMs;
    let info: ObjectInfo | null = null;
    let first: ReadableStream<Uint8Array> | undefined;
    for (let changed = 0; first === undefined; changed++) {
      info = await this.head(key);
      if (info === null) throw new NotFoundError(url);
      const version = read.version ?? info.version;
      try {
        first = await this.#run(
          "read",
          key,
          (signal) => this.inner.getStream(key, { version, offset: read.offset, signal }),
        );
      } catch (err) {
        // Replaced between head() and the read: look again (a given version cannot be looked for).
        const again = err instanceof PreconditionFailedError && read.version === undefined &&
          changed < CHANGED_WHILE_OPENING;
        if (!again) throw err;
      }
    }
    const { version, size } = { version: read.version ?? info!.version, size: info!.size };
    const tries = this.retry.begin(this.area, { what: this.#what("read", key) });
    let delivered = read.offset ?? 0;
    let piece: { reader: ReadableStreamDefaultReader<Uint8Array>; abort: AbortController } | null =
      { reader: first.getReader(), abort: new AbortController() };
    const inner = this.inner;
    const reopen = async () => {
      const abort = new AbortController();
      const stream = await withDeadline(
        (signal) => {
          signal.addEventListener("abort", () => abort.abort(signal.reason), { once: true });
          return inner.getStream(key, { version, offset: delivered, signal: abort.signal });
        },
        timeoutMs,
      );
      return { reader: stream.getReader(), abort };
    };
    const drop = () => {
      piece?.abort.abort();
      piece?.reader.cancel().catch(() => {});
      piece = null;
    };
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        for (;;) {
          try {
            piece ??= await reopen();
            const { done, value } = await withDeadline(() => piece!.reader.read(), timeoutMs);
            if (done) {
              if (delivered < size) throw new TruncatedBodyError(delivered, size);
              tries.succeeded();
              controller.close();
              return;
            }
            if (delivered + value.byteLength > size) {
              throw new BronzeError(`${url} changed while being read (more bytes than its size)`);
            }
            delivered += value.byteLength;
            tries.succeeded();
            controller.enqueue(value);
            return;
          } catch (err) {
            drop();
            if (err instanceof PreconditionFailedError) {
              throw new BronzeError(`${url} was replaced while being read; read it again`);
            }
            // A stream's own error (a reset mid-body) is named after the object, as a backend's.
            const wait = tries.failed(storeError("read", url, err));
            await sleep(wait);
          }
        }
      },
      cancel() {
        drop();
      },
    });
  }
}

/** sha256 and size of bytes, or of a local file read as a stream. */
async function digestOf(
  data: Uint8Array | { file: string },
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  if (data instanceof Uint8Array) {
    hash.update(data);
    bytes = data.byteLength;
  } else {
    const file = await Deno.open(data.file, { read: true });
    for await (const chunk of file.readable) { // closes the file
      hash.update(chunk);
      bytes += chunk.byteLength;
    }
  }
  return { sha256: hash.digest("hex"), bytes };
}
