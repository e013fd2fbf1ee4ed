/**
 * Where a lineage row's file is: under a given storage root at its storage_path, else at its
 * storage_uri (the root being the URI without the storage_path suffix). One store per root,
 * opened once and closed together: verify and repair read many rows of few roots.
 */
import { type ObjectStore, openStore } from "../blob/mod.ts";
import type { LineageRow } from "../metadata/writer.ts";

export class Stores {
  readonly #open = new Map<string, ObjectStore>();

  constructor(private readonly storageRoot: string | undefined) {}

  locate(row: Pick<LineageRow, "storagePath" | "storageUri">): { store: ObjectStore; key: string } {
    if (this.storageRoot !== undefined) {
      return { store: this.#for(this.storageRoot), key: row.storagePath };
    }
    const uri = row.storageUri;
    if (uri.endsWith(`/${row.storagePath}`)) {
      return { store: this.#for(uri.slice(0, -row.storagePath.length - 1)), key: row.storagePath };
    }
    const cut = uri.lastIndexOf("/");
    return { store: this.#for(uri.slice(0, cut)), key: uri.slice(cut + 1) };
  }

  async close(): Promise<void> {
    for (const s of this.#open.values()) await s.close?.();
    this.#open.clear();
  }

  #for(root: string): ObjectStore {
    let s = this.#open.get(root);
    if (!s) this.#open.set(root, s = openStore(root));
    return s;
  }
}
