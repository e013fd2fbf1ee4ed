/**
 * How the RPC source talks to a node: the SDK's `rpc.Server` builds the JSON-RPC requests and
 * unwraps the answers, over a transport of our own (fetch: a per-call signal, errors that say what
 * happened), each call through the one retry policy and failing as one line naming the endpoint,
 * with no credential in it. Apart from rpc.ts, which says what to ask (the network, the window,
 * the pages of ledgers) and checks the answers.
 */
import type { rpc } from "@stellar/stellar-sdk";
import { BronzeError } from "../runtime/errors.ts";
import { oneLine } from "../runtime/format.ts";
import type { Retrier } from "../runtime/retry.ts";
import { BadResponseError, HttpStatusError, NetworkError } from "../runtime/transient.ts";
import type { RpcUrl } from "./url.ts";

/** A server's Retry-After is honoured up to this. */
const MAX_RETRY_AFTER_MS = 30_000;

/** A response that is not what the method returns: retried like a transport failure. */
export const Malformed = BadResponseError;

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Where to call, and how to print it: no user:password (sent as a header), no query string. */
export interface Endpoint {
  /** The URL the calls go to, without user:password but with its query (an API key, say). */
  call: string;
  /** `https://host[:port]/path`: safe to print. */
  printable: string;
  headers: Record<string, string>;
  /** Removes every trace of the credentials from a message (a fetch error may quote the URL). */
  scrub(text: string): string;
}

export function endpointOf(url: RpcUrl): Endpoint {
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

/** An SDK client and the signal that cancels its calls (and the waits between them). */
export interface Client {
  server: rpc.Server;
  signal: AbortSignal;
}

/** The calls to one endpoint, through one retry policy. */
export class RpcCaller {
  constructor(
    readonly ep: Endpoint,
    private readonly sdk: typeof rpc,
    private readonly retry: Retrier,
  ) {}

  /**
   * One read, through the one retry policy, each attempt under its deadline; then one line naming
   * the endpoint and `what` (the ledger). `parse` throws Malformed for a bad response (retried) or
   * a BronzeError (final).
   */
  async call<T>(
    what: string,
    client: Client,
    request: (server: rpc.Server) => Promise<unknown>,
    parse: (result: unknown) => T,
  ): Promise<T> {
    const ep = this.ep.printable;
    return await this.retry.run(
      "source",
      async (signal) => {
        try {
          return parse(
            await request(this.clientFor(AbortSignal.any([client.signal, signal])).server),
          );
        } catch (e) {
          // Cancelled: the reason says why (closed, the consumer's abort, our deadline).
          client.signal.throwIfAborted();
          if (e instanceof BronzeError) throw e;
          if (!_isKnown(e)) throw e; // a bug, not the node's doing
          // One line naming the endpoint and the ledger, the original kept for the classifier.
          const problem = isObject(e) && !(e instanceof Error)
            ? `error ${e.code}: ${String(e.message)}`
            : String((e as Error).message);
          const named = new BronzeError(`RPC ${ep}: ${what}: ${this.ep.scrub(oneLine(problem))}`);
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
  clientFor(signal: AbortSignal): Client {
    const server = new this.sdk.Server(this.ep.call, {
      allowHttp: this.ep.call.startsWith("http:"),
      headers: this.ep.headers,
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
  return isObject(e) && !(e instanceof Error) && typeof e.code === "number";
}

/** The transport hook of the SDK's HTTP client (not exported by name). */
type Adapter = NonNullable<rpc.Server["httpClient"]["defaults"]["adapter"]>;

/** The SDK HTTP client's transport, over fetch: see RpcCaller.clientFor. */
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
    if (!isObject(data) || !("result" in data || "error" in data)) {
      throw new Malformed("response is not a JSON-RPC response");
    }
    return { data, status: res.status, statusText: res.statusText, headers: {}, config };
  };
}
