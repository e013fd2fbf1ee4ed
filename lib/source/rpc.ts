/**
 * Reads the recent ledgers a Stellar RPC node holds (`rpc+https://host[:port][/path]`):
 * `getNetwork` checks the network on open, `getHealth` gives the head and the window of ledgers the
 * node keeps (about a week), `getLedgers` streams them page by page. Yields each ledger's exact
 * LedgerCloseMeta bytes (its base64 `metadataXdr`), checked as a lake's are, so the same ledgers
 * give the same Parquet bytes whichever source they came from.
 *
 * Calls go through the SDK's `rpc.Server`; `getLedgers` through its raw variant, since the parsed
 * one decodes every ledger into XDR objects and we need the bytes. Every call goes through the one
 * retry policy (runtime/retry.ts: a deadline per attempt, backoff, the --retry-for bound); what is
 * transient (timeouts, no connection, HTTP 408/429/5xx, server-side JSON-RPC errors, malformed
 * responses) is decided in runtime/transient.ts, as for the object stores. How a call reaches the
 * node (the SDK over our fetch transport, the retries, the one-line errors) is _rpc_transport.ts's;
 * this file says what to ask and checks what comes back.
 */
import type { rpc } from "@stellar/stellar-sdk";
import { BronzeError } from "../runtime/errors.ts";
import { Retrier } from "../runtime/retry.ts";
import {
  type Client,
  type Endpoint,
  endpointOf,
  isObject,
  Malformed,
  RpcCaller,
} from "./_rpc_transport.ts";
import { splitLedgers } from "./ledger.ts";
import { type Network, passphraseOf } from "./network.ts";
import type { LedgerSource, RawLedger, StreamOptions } from "./source.ts";
import { isRpcUrl, type RpcUrl, toSourceUrl } from "./url.ts";

export interface RpcOptions {
  /** Ledgers asked for per getLedgers call (default 10: pubnet ledgers run to megabytes). */
  pageSize?: number;
  /** The run's retry policy and listener (default: the default policy, told to nobody). */
  retry?: Retrier;
}

export const DEFAULT_PAGE_SIZE = 10;
/** Pages fetched ahead of the one being consumed, unless StreamOptions.prefetch says otherwise. */
export const DEFAULT_PREFETCH_PAGES = 1;

export interface RpcNode extends LedgerSource {
  readonly type: "live";
  /** Cancels every call in flight. */
  close(): Promise<void>;
}

/** Opens the RPC node a `rpc+https://` or `rpc+http://` URL names, checking its network. */
export async function openRpc(
  url: string | RpcUrl,
  network: Network,
  opts: RpcOptions = {},
): Promise<RpcNode> {
  const parsed = toSourceUrl(url);
  if (!isRpcUrl(parsed)) {
    throw new BronzeError(`source ${parsed.url} is not a Stellar RPC node (rpc+https://…)`);
  }
  const ep = endpointOf(parsed);
  // The SDK is loaded only here: a lake's build workers never pay for it.
  const sdk = await import("@stellar/stellar-sdk");
  const caller = new RpcCaller(ep, sdk.rpc, opts.retry ?? new Retrier());
  const source = new RpcSource(caller, network, opts.pageSize ?? DEFAULT_PAGE_SIZE);
  try {
    await source.checkNetwork();
  } catch (e) {
    await source.close();
    throw e;
  }
  return source;
}

interface Page {
  ledgers: RawLedger[];
  /** The first ledger after this page. */
  next: number;
  cursor: string;
}

interface Window {
  oldestLedger: number;
  latestLedger: number;
}

const _isSeq = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;

class RpcSource implements RpcNode {
  readonly url: string;
  readonly type = "live";
  readonly #caller: RpcCaller;
  readonly #ep: Endpoint;
  readonly #pageSize: number;
  /** Aborted by close(): cancels every call in flight. */
  readonly #closed = new AbortController();
  readonly #client: Client;

  constructor(caller: RpcCaller, readonly network: Network, pageSize: number) {
    this.#caller = caller;
    this.#ep = caller.ep;
    this.#pageSize = pageSize;
    this.url = `rpc+${caller.ep.printable}`;
    this.#client = caller.clientFor(this.#closed.signal);
  }

  close(): Promise<void> {
    this.#closed.abort(new BronzeError(`RPC ${this.#ep.printable}: closed`));
    return Promise.resolve();
  }

  async checkNetwork(): Promise<void> {
    const passphrase = await this.#caller.call(
      "getNetwork",
      this.#client,
      (s) => s.getNetwork(),
      (r) => {
        if (!isObject(r) || typeof r.passphrase !== "string") throw new Malformed("no passphrase");
        return r.passphrase;
      },
    );
    const expected = passphraseOf(this.network);
    if (passphrase !== expected) {
      throw new BronzeError(
        `RPC ${this.#ep.printable} is for network passphrase "${passphrase}", ` +
          `but ${this.network} is "${expected}"`,
      );
    }
  }

  /** getHealth rather than getLatestLedger: it is tiny (no ledger XDR) and gives the window too. */
  async head(): Promise<number> {
    return (await this.#window(this.#client)).latestLedger;
  }

  async *stream(start: number, end: number, opts: StreamOptions = {}): AsyncIterable<RawLedger> {
    const ep = this.#ep.printable;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start) {
      throw new BronzeError(`RPC ${ep}: bad ledger range ${start}-${end}`);
    }
    // Leaving the loop (a break, an error, the consumer's signal) cancels the pages prefetched.
    const stop = new AbortController();
    const signal = AbortSignal.any(
      [this.#closed.signal, stop.signal, opts.signal].filter((s) => !!s),
    );
    const client = this.#caller.clientFor(signal);
    const queue: Promise<Page | null>[] = [];
    try {
      const { oldestLedger, latestLedger } = await this.#window(client);
      if (start < oldestLedger) {
        throw new BronzeError(
          `ledger ${start} is older than the oldest ledger ${oldestLedger} that RPC ${ep} holds; ` +
            `copy it from a lake`,
        );
      }
      if (end > latestLedger) throw this.#newer(end, latestLedger);

      // A page asks for the ledgers after the previous page's cursor, so pages come one after
      // another; `ahead` of them are fetched while the consumer works through the current one.
      const ahead = Math.max(1, opts.prefetch ?? DEFAULT_PREFETCH_PAGES);
      const fetchAfter = (prev: Page | null): Promise<Page | null> => {
        const from = prev ? prev.next : start;
        if (from > end) return Promise.resolve(null);
        const limit = Math.min(this.#pageSize, end - from + 1);
        return this.#page(client, from, limit, prev?.cursor);
      };
      let tail: Promise<Page | null> | undefined;
      const fill = () => {
        while (queue.length < ahead) {
          const p: Promise<Page | null> = tail
            ? tail.then((prev) => prev && fetchAfter(prev))
            : fetchAfter(null);
          p.catch(() => {}); // awaited in turn, or never after a break
          queue.push(tail = p);
        }
      };
      fill();
      for (let expect = start; expect <= end;) {
        const page = await queue.shift()!;
        fill();
        if (!page) break; // not reached: pages run to `end`
        for (const ledger of page.ledgers) {
          opts.signal?.throwIfAborted();
          yield ledger;
          expect++;
        }
      }
    } finally {
      stop.abort();
      await Promise.allSettled(queue);
    }
  }

  #newer(seq: number, latest: number): BronzeError {
    return new BronzeError(
      `ledger ${seq} is newer than the latest ledger ${latest} that RPC ${this.#ep.printable} holds`,
    );
  }

  #window(client: Client): Promise<Window> {
    return this.#caller.call("getHealth", client, (s) => s.getHealth(), (r) => {
      if (!isObject(r) || !_isSeq(r.oldestLedger) || !_isSeq(r.latestLedger)) {
        throw new Malformed("response is not a getHealth result");
      }
      if (r.oldestLedger > r.latestLedger) {
        throw new Malformed(`oldest ledger ${r.oldestLedger} is after latest ${r.latestLedger}`);
      }
      return { oldestLedger: r.oldestLedger, latestLedger: r.latestLedger };
    });
  }

  /** Ledgers `from .. from + limit - 1` (or fewer, if the node says so), checked. */
  #page(
    client: Client,
    from: number,
    limit: number,
    cursor: string | undefined,
  ): Promise<Page> {
    const request: rpc.Api.GetLedgersRequest = cursor === undefined
      ? { startLedger: from, pagination: { limit } }
      : { pagination: { cursor, limit } };
    const key = `RPC ${this.#ep.printable}`;
    return this.#caller.call(
      `getLedgers from ledger ${from}`,
      client,
      (s) => s._getLedgers(request),
      (r) => {
        if (
          !isObject(r) || !Array.isArray(r.ledgers) || typeof r.cursor !== "string" ||
          !_isSeq(r.latestLedger)
        ) {
          throw new Malformed("response is not a getLedgers result");
        }
        if (r.ledgers.length === 0) {
          if (from > r.latestLedger) throw this.#newer(from, r.latestLedger);
          throw new Malformed(`no ledgers returned`);
        }
        const ledgers = r.ledgers.map((l: unknown, i: number): RawLedger => {
          const seq = from + i;
          if (!isObject(l)) throw new Malformed(`ledger #${i} is not an object`);
          if (l.sequence !== seq) {
            throw new Malformed(`returned ledger ${l.sequence} where ledger ${seq} belongs`);
          }
          if (typeof l.metadataXdr !== "string") {
            throw new Malformed(`ledger ${seq} has no metadataXdr`);
          }
          let xdr: Uint8Array;
          try {
            xdr = Uint8Array.fromBase64(l.metadataXdr, { lastChunkHandling: "strict" });
          } catch {
            throw new Malformed(`metadataXdr of ledger ${seq} is not base64`);
          }
          try {
            splitLedgers(xdr, 0, seq, 1, `metadataXdr of ledger ${seq}`);
          } catch (e) {
            throw e instanceof BronzeError ? new Malformed(e.message) : e;
          }
          return { sequence: seq, key, xdr };
        });
        // In sequence but more than asked for: it would run past the end of the range.
        if (ledgers.length > limit) {
          throw new Malformed(`${ledgers.length} ledgers returned for a limit of ${limit}`);
        }
        return { ledgers, next: from + ledgers.length, cursor: r.cursor };
      },
    );
  }
}
