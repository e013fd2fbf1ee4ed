/** Opens the ObjectStore for a URL: a bare path or file:// (local), gs:// or s3://. */
import { BronzeError } from "../errors.ts";
import { FileStore } from "./file.ts";
import { GcsStore } from "./gcs.ts";
import { redactUrl } from "./keys.ts";
import { S3Store } from "./s3.ts";
import type { ObjectStore } from "./store.ts";

export { joinKey, objectUrl, redactUrl } from "./keys.ts";
export {
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  PreconditionFailedError,
  type VersionedObject,
} from "./store.ts";

/** Cloud stores take their endpoint and credentials from the environment (see s3.ts, gcs.ts). */
export function openStore(url: string): ObjectStore {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case undefined:
    case "file":
      if (url === "") break;
      return new FileStore(url);
    case "gs":
      return new GcsStore(url);
    case "s3":
      return new S3Store(url);
  }
  throw new BronzeError(
    `unsupported storage URL ${JSON.stringify(redactUrl(url))}: ` +
      `use a local path, file://, gs://bucket[/prefix] or s3://bucket[/prefix]`,
  );
}
