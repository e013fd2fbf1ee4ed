/** Opens the ObjectStore for a URL: a bare path or file:// (local), gs:// or s3://. */
import { FileStore } from "./file.ts";
import { GcsStore } from "./gcs.ts";
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
  type StoreUrl,
  toObjectUrl,
  toStoreUrl,
  type UrlProblem,
} from "./url.ts";
export {
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  PreconditionFailedError,
  type VersionedObject,
} from "./store.ts";

/**
 * The store a URL names, parsed by the settings (or here, for a URL from elsewhere). Cloud stores
 * take their endpoint and credentials from the environment (see s3.ts, gcs.ts).
 */
export function openStore(url: string | StoreUrl): ObjectStore {
  const parsed = toStoreUrl(url);
  switch (parsed.scheme) {
    case "file":
      return new FileStore(parsed.path, parsed.url);
    case "gs":
      return new GcsStore(parsed);
    case "s3":
      return new S3Store(parsed);
  }
}
