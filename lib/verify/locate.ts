/**
 * Where a lineage row's file is: under a given storage root at its storage_path, else at its
 * storage_uri (the root being the URI without the storage_path suffix). One store per root,
 * opened once and closed together: verify and repair read many rows of few roots.
 */
import { type ObjectStore, openStore, type StoreUrl } from "../blob/mod.ts";
import type { Retrier } from "../runtime/retry.ts";
import type { LineageRow } from "../metadata/writer.ts";

export class Stores {
  readonly #open = new Map<string, ObjectStore>();

  /**
   * `storageRoot`: the root every row's file is under (--storage), else each row's own; `retry`:
   * the run's retry policy and listener.
   */
  constructor(
    private readonly storageRoot: StoreUrl | undefined,
    private readonly retry?: Retrier,
  ) {}

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

  /** A lineage row's root is parsed here: it comes from the catalog, not the settings. */
  #for(root: string | StoreUrl): ObjectStore {
    const key = typeof root === "string" ? root : root.url;
    let s = this.#open.get(key);
    if (!s) this.#open.set(key, s = openStore(root, { area: "storage", retry: this.retry }));
    return s;
  }
}
