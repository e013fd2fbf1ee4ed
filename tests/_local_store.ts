// THROWAWAY until lib/blob/mod.ts lands: a minimal local-directory ObjectStore.
import { NotFoundError, type ObjectInfo, type ObjectStore } from "../lib/blob/store.ts";
export function openStore(root: string): Promise<ObjectStore> {
  const p = (k: string) => `${root}/${k}`;
  return Promise.resolve({
    url: root,
    async get(k) {
      try {
        return await Deno.readFile(p(k));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) throw new NotFoundError(p(k));
        throw e;
      }
    },
    getVersioned: () => Promise.reject(new Error("unused")),
    getStream: () => Promise.reject(new Error("unused")),
    head: () => Promise.reject(new Error("unused")),
    async putIfAbsent(k, d) {
      await Deno.mkdir(p(k).replace(/\/[^/]*$/, ""), { recursive: true });
      try {
        await Deno.writeFile(p(k), d as Uint8Array, { createNew: true });
        return "created";
      } catch {
        return "exists";
      }
    },
    putIfVersion: () => Promise.reject(new Error("unused")),
    async *list(_prefix: string): AsyncIterable<ObjectInfo> {},
  });
}
