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
 * responses) is decided in runtime/transient.ts, as for the object stores.
 */
import type { rpc } from "@stellar/stellar-sdk";
import { BronzeError } from "../runtime/errors.ts";
import { Retrier } from "../runtime/retry.ts";
import { BadResponseError, HttpStatusError, NetworkError } from "../runtime/transient.ts";
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
/** A server's Retry-After is honoured up to this. */
const MAX_RETRY_AFTER_MS = 30_000;

export interface RpcNode extends LedgerSource {
  readonly type: "live";
  /** Cancels every call in flight. */
  close(): Promise<void>;
}

/** Where to call, and how to print it: no user:password (sent as a header), no query string. */
interface Endpoint {
  /** The URL the calls go to, without user:password but with its query (an API key, say). */
  call: string;
  /** `https://host[:port]/path`: safe to print. */
  printable: string;
  headers: Record<string, string>;
  /** Removes every trace of the credentials from a message (a fetch error may quote the URL). */
  scrub(text: string): string;
}

function _endpoint(url: RpcUrl): Endpoint {
  const { call, printable, secrets } = url;
  const scrub = (text: string) => {
    let out = text.replaceAll(call, printable);
    for (const s of secrets) {
      out = out.replaceAll(s, "***").replaceAll(encodeURIComponent(s), "***");
    }
    return out;
  };
  const headers: Record<string, string> = url.authorization
    ? { Authorization: url.authorization }
    : {};
  return { call, printable, headers, scrub };
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
  const ep = _endpoint(parsed);
  // The SDK is loaded only here: a lake's build workers never pay for it.
  const sdk = await import("@stellar/stellar-sdk");
  const source = new RpcSource(
    ep,
    network,
    { pageSize: opts.pageSize ?? DEFAULT_PAGE_SIZE, retry: opts.retry ?? new Retrier() },
    sdk.rpc,
  );
  try {
    await source.checkNetwork();
  } catch (e) {
    await source.close();
    throw e;
  }
  return source;
}

/** A response that is not what the method returns: retried like a transport failure. */
const Malformed = BadResponseError;

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

const _isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const _isSeq = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;

/** An SDK client and the signal that cancels its calls (and the waits between them). */
interface Client {
  server: rpc.Server;
  signal: AbortSignal;
}

class RpcSource implements RpcNode {
  readonly url: string;
  readonly type = "live";
  readonly #ep: Endpoint;
  readonly #opts: { pageSize: number; retry: Retrier };
  /** Aborted by close(): cancels every call in flight. */
  readonly #closed = new AbortController();
  readonly #client: Client;

  constructor(
    ep: Endpoint,
    readonly network: Network,
    opts: { pageSize: number; retry: Retrier },
    private readonly sdk: typeof rpc,
  ) {
    this.#ep = ep;
    this.#opts = opts;
    this.url = `rpc+${ep.printable}`;
    this.#client = this.#clientFor(this.#closed.signal);
  }

  close(): Promise<void> {
    this.#closed.abort(new BronzeError(`RPC ${this.#ep.printable}: closed`));
    return Promise.resolve();
  }

  async checkNetwork(): Promise<void> {
    const passphrase = await this.#call(
      "getNetwork",
      this.#client,
      (s) => s.getNetwork(),
      (r) => {
        if (!_isObject(r) || typeof r.passphrase !== "string") throw new Malformed("no passphrase");
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
    const client = this.#clientFor(signal);
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
        const limit = Math.min(this.#opts.pageSize, end - from + 1);
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
    return this.#call("getHealth", client, (s) => s.getHealth(), (r) => {
      if (!_isObject(r) || !_isSeq(r.oldestLedger) || !_isSeq(r.latestLedger)) {
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
    return this.#call(
      `getLedgers from ledger ${from}`,
      client,
      (s) => s._getLedgers(request),
      (r) => {
        if (
          !_isObject(r) || !Array.isArray(r.ledgers) || typeof r.cursor !== "string" ||
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
          if (!_isObject(l)) throw new Malformed(`ledger #${i} is not an object`);
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

  /**
   * One read, through the one retry policy, each attempt under its deadline; then one line naming
   * the endpoint and `what` (the ledger). `parse` throws Malformed for a bad response (retried) or
   * a BronzeError (final).
   */
  async #call<T>(
    what: string,
    client: Client,
    request: (server: rpc.Server) => Promise<unknown>,
    parse: (result: unknown) => T,
  ): Promise<T> {
    const ep = this.#ep.printable;
    const scrub = (s: string) => this.#ep.scrub(s.replace(/\s+/g, " ").trim());
    return await this.#opts.retry.run(
      "source",
      async (signal) => {
        try {
          return parse(
            await request(this.#clientFor(AbortSignal.any([client.signal, signal])).server),
          );
        } catch (e) {
          // Cancelled: the reason says why (closed, the consumer's abort, our deadline).
          client.signal.throwIfAborted();
          if (e instanceof BronzeError) throw e;
          if (!_isKnown(e)) throw e; // a bug, not the node's doing
          // One line naming the endpoint and the ledger, the original kept for the classifier.
          const problem = _isObject(e) && !(e instanceof Error)
            ? `error ${e.code}: ${String(e.message)}`
            : String((e as Error).message);
          const named = new BronzeError(`RPC ${ep}: ${what}: ${scrub(problem)}`);
          (named as { cause?: unknown }).cause = e;
          throw named;
        }
      },
      { signal: client.signal, what: `RPC ${ep}: ${what}` },
    );
  }

  /**
   * An SDK client whose calls go through `_fetchAdapter`: the SDK builds the JSON-RPC requests
   * and unwraps the answers, the adapter owns the HTTP (timeout, cancelling, errors that say what
   * happened). Its own transport ignores its `timeout` option, takes no per-call signal, and
   * reports a refused connection as just "fetch failed".
   */
  #clientFor(signal: AbortSignal): Client {
    const server = new this.sdk.Server(this.#ep.call, {
      allowHttp: this.#ep.call.startsWith("http:"),
      headers: this.#ep.headers,
    });
    server.httpClient.defaults.adapter = _fetchAdapter(signal);
    return { server, signal };
  }
}

/** What the node or the transport can say (classified in transient.ts); anything else is a bug. */
function _isKnown(e: unknown): boolean {
  if (e instanceof HttpStatusError || e instanceof BadResponseError || e instanceof NetworkError) {
    return true;
  }
  // The SDK throws the JSON-RPC error object itself.
  return _isObject(e) && !(e instanceof Error) && typeof e.code === "number";
}

/** The transport hook of the SDK's HTTP client (not exported by name). */
type Adapter = NonNullable<rpc.Server["httpClient"]["defaults"]["adapter"]>;

/** The SDK HTTP client's transport, over fetch: see RpcSource.#clientFor. */
function _fetchAdapter(signal: AbortSignal): Adapter {
  return async (config) => {
    const headers = new Headers(config.headers);
    headers.set("content-type", "application/json");
    let res: Response;
    let text: string;
    try {
      res = await fetch(config.url!, {
        method: "POST",
        headers,
        body: JSON.stringify(config.data),
        signal,
      });
    } catch (e) {
      signal.throwIfAborted();
      // fetch says "fetch failed"; what failed (refused, reset, DNS) is its cause.
      const err = e as Error;
      throw new NetworkError(
        err.cause instanceof Error ? err.cause.message : err.message,
        "connection",
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      const after = Number(res.headers.get("retry-after") ?? NaN);
      const afterMs = Number.isFinite(after) ? Math.min(after * 1000, MAX_RETRY_AFTER_MS) : 0;
      throw new HttpStatusError(res.status, res.statusText, afterMs);
    }
    try {
      text = await res.text();
    } catch (e) {
      signal.throwIfAborted();
      throw new NetworkError(`the response broke off: ${(e as Error).message}`, "truncated");
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new Malformed("response is not JSON");
    }
    if (!_isObject(data) || !("result" in data || "error" in data)) {
      throw new Malformed("response is not a JSON-RPC response");
    }
    return { data, status: res.status, statusText: res.statusText, headers: {}, config };
  };
}
