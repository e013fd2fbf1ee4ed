/**
 * What a copier's `--metrics-addr` serves at `/` and `/status.json`: the status document of the
 * catalog the copy opened, and of the copier itself. However many browsers are open, the catalog
 * is asked at most once per refresh interval: its answer (or its failure) is kept for that long,
 * and every request meanwhile, those arriving while it is asked included, shares it.
 */
import type { Catalog } from "../metadata/catalog.ts";
import { type CatalogStatus, catalogStatus, type StatusQuery } from "../metadata/status.ts";
import type { StatusPages } from "../metrics/server.ts";
import { type Self, statusDoc } from "./doc.ts";
import type { StatusDoc } from "./schema.ts";
import { liveCsp, statusPage } from "./page.ts";

export interface BoardOptions {
  /** Seconds between the page's refreshes, and how long one catalog answer serves. */
  refreshSeconds: number;
  /** The copier serving the page, as it is now. */
  self?: () => Self;
  query?: StatusQuery;
  /** Milliseconds on a monotonic clock (default performance.now). */
  now?: () => number;
}

export class StatusBoard implements StatusPages {
  #catalog: Catalog | null = null;
  #cached: { at: number; answer: Promise<CatalogStatus> } | null = null;
  #queries = 0;

  constructor(private readonly opts: BoardOptions) {}

  /** From now on the page reads this catalog (the copy's, once open). */
  opened(catalog: Catalog): void {
    this.#catalog = catalog;
    this.#cached = null;
  }

  /** The catalog is about to close: the page shows the copier alone. */
  closing(): void {
    this.#catalog = null;
    this.#cached = null;
  }

  /** Catalog queries issued so far. */
  get queries(): number {
    return this.#queries;
  }

  async doc(): Promise<StatusDoc> {
    const catalog = this.#catalog;
    const base = {
      catalogLabel: catalog?.label ?? "(not open yet)",
      self: this.opts.self?.() ?? null,
      refreshSeconds: this.opts.refreshSeconds,
    };
    if (!catalog) return statusDoc({ ...base, status: null, problem: "not open yet" });
    try {
      return statusDoc({ ...base, status: await this.#status(catalog) });
    } catch (err) {
      const problem = String((err as Error)?.message ?? err).split("\n")[0];
      return statusDoc({ ...base, status: null, problem });
    }
  }

  async html(): Promise<{ body: string; csp: string }> {
    return { body: statusPage(await this.doc(), "live"), csp: liveCsp() };
  }

  async json(): Promise<string> {
    return JSON.stringify(await this.doc());
  }

  #status(catalog: Catalog): Promise<CatalogStatus> {
    const now = (this.opts.now ?? (() => performance.now()))();
    const c = this.#cached;
    if (c && now - c.at < this.opts.refreshSeconds * 1000) return c.answer;
    this.#queries++;
    const answer = catalogStatus(catalog, this.opts.query);
    answer.catch(() => {}); // a failure is kept, and shown, for the interval like an answer
    this.#cached = { at: now, answer };
    return answer;
  }
}
