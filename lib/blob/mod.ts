/** Opens the ObjectStore for a URL: a bare path or file:// (local), gs:// or s3://. */
import { BronzeError } from "../runtime/errors.ts";
import { FileStore } from "./file.ts";
import { GcsStore } from "./gcs.ts";
import { parseStoreUrl, redactUrl, schemeOf } from "./url.ts";
import { S3Store } from "./s3.ts";
import type { ObjectStore } from "./store.ts";

export { joinKey, objectUrl } from "./keys.ts";
export { hashObject } from "./hash.ts";
export { parseStoreUrl, redactUrl, schemeOf, splitObjectUrl, type StoreUrl } from "./url.ts";
export {
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  PreconditionFailedError,
  type VersionedObject,
} from "./store.ts";

/** Cloud stores take their endpoint and credentials from the environment (see s3.ts, gcs.ts). */
export function openStore(url: string): ObjectStore {
  const parsed = parseStoreUrl(url);
  if ("problem" in parsed) {
    const scheme = schemeOf(url);
    throw new BronzeError(
      scheme === "gs" || scheme === "s3"
        ? `invalid ${scheme}:// URL ${redactUrl(url)}: expected ${scheme}://bucket[/prefix]`
        : `unsupported storage URL ${JSON.stringify(redactUrl(url))}: ` +
          `use a local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix]`,
    );
  }
  switch (parsed.scheme) {
    case "file":
      return new FileStore(url);
    case "gs":
      return new GcsStore(url);
    case "s3":
      return new S3Store(url);
  }
}
