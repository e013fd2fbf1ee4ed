/**
 * `_manifest.json`, written beside each partition file: what the partition is and who made it, so
 * storage describes itself without the catalog.
 */
import { BronzeError } from "../errors.ts";

export interface Manifest {
  partition: { start: number; end: number; table: string; file: string };
  table: { checksum: string; rows: number; bytes: number };
  producer: { version: string; git_sha: string | null };
  created_at: string;
}

export function encodeManifest(m: Manifest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(m, null, 2) + "\n");
}

/** Parses a manifest's bytes; `where` names it in the one-line error. */
export function parseManifest(bytes: Uint8Array, where: string): Manifest {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new BronzeError(`manifest ${where} is not valid JSON (${(err as Error).message})`);
  }
}
