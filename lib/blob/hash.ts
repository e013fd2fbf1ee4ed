import { createHash } from "node:crypto";
import { fsError } from "../runtime/errors.ts";
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
  // A full disk or a folder not writable where the copy goes is the machine's: one line, exit 74.
  const local = (e: unknown) => fsError(e, { path: copyTo!, writing: true });
  const file = copyTo
    ? await Deno.open(copyTo, { write: true, createNew: true }).catch((e) => {
      throw local(e);
    })
    : null;
  try {
    for await (const chunk of await store.getStream(key)) {
      hash.update(chunk);
      bytes += chunk.length;
      if (file) {
        let written = 0;
        try {
          while (written < chunk.length) written += await file.write(chunk.subarray(written));
        } catch (e) {
          throw local(e);
        }
      }
    }
  } finally {
    file?.close();
  }
  return { sha256: hash.digest("hex"), bytes };
}
