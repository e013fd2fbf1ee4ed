import { createHash } from "node:crypto";
import type { ObjectStore } from "./store.ts";

/**
 * sha256 (hex) and size of a stored object, streamed: partition files can be gigabytes. With
 * `copyTo`, the bytes are also written to that new local file on the way (verify reads it back).
 */
export async function hashObject(
  store: ObjectStore,
  key: string,
  copyTo: string | null = null,
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const file = copyTo ? await Deno.open(copyTo, { write: true, createNew: true }) : null;
  try {
    for await (const chunk of await store.getStream(key)) {
      hash.update(chunk);
      bytes += chunk.length;
      if (file) {
        let written = 0;
        while (written < chunk.length) written += await file.write(chunk.subarray(written));
      }
    }
  } finally {
    file?.close();
  }
  return { sha256: hash.digest("hex"), bytes };
}
