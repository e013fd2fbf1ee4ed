/** Opens the ObjectStore for a URL: a bare path or file:// (local), gs:// or s3://. */
import { Retrier, type RetryArea } from "../runtime/retry.ts";
import { FileStore } from "./file.ts";
import { GcsStore } from "./gcs.ts";
import { RetryingStore } from "./retrying.ts";
import { type StoreUrl, toStoreUrl } from "./url.ts";
import { S3Store } from "./s3.ts";
import type { ObjectStore } from "./store.ts";

export { joinKey, objectUrl } from "./keys.ts";
export { hashObject } from "./hash.ts";
export {
  type BucketUrl,
  type FileUrl,
  type ObjectUrl,
  parseObjectUrl,
  parseStoreUrl,
  redactUrl,
  schemeOf,
  storageRootOf,
  storeShown,
  type StoreUrl,
  storeWithin,
  toObjectUrl,
  toStoreUrl,
  type UrlProblem,
} from "./url.ts";
export {
  type CallOptions,
  type ListOptions,
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  OutsideRootError,
  PreconditionFailedError,
  type ReadOptions,
  type VersionedObject,
} from "./store.ts";

export interface OpenOptions {
  /**
   * What the store is to the run: its retries are counted under this area, and every store but
   * the source's (a lake) keeps to its root (file.ts: no symbolic link out of it is followed).
   * Default "storage".
   */
  area?: RetryArea;
  /** The run's retry policy and listener; default: the default policy, told to nobody. */
  retry?: Retrier;
}

const DEFAULT_RETRIER = new Retrier();

/**
 * The store a URL names, parsed by the settings (or here, for a URL from elsewhere). Cloud stores
 * take their endpoint and credentials from the environment (see s3.ts, gcs.ts). The store
 * returned retries transient failures (retrying.ts).
 */
export function openStore(url: string | StoreUrl, opts: OpenOptions = {}): ObjectStore {
  const area = opts.area ?? "storage";
  return new RetryingStore(backendFor(toStoreUrl(url), area), opts.retry ?? DEFAULT_RETRIER, area);
}

function backendFor(parsed: StoreUrl, area: RetryArea): ObjectStore {
  switch (parsed.scheme) {
    case "file":
      return new FileStore(parsed.path, parsed.url, { confine: area !== "source" });
    case "gs":
      return new GcsStore(parsed);
    case "s3":
      return new S3Store(parsed);
  }
}
