/**
 * A local Stellar RPC node for tests: serves the real ledgers of a lake directory (the sample
 * lakes, or a synthetic one) over JSON-RPC, as stellar-rpc does. Listens on 127.0.0.1, ephemeral
 * port.
 *
 * Methods: `getLedgers` (startLedger or pagination.cursor, pagination.limit, the real response and
 * error shapes and messages of stellar-rpc's get_ledgers.go), `getNetwork`, `getHealth`,
 * `getLatestLedger`. The window of ledgers held (`oldest`..`latest`) can be moved while it runs.
 *
 * Faults make the next matching calls fail: an HTTP status (503, 429...), malformed JSON, a wrong
 * shape, bad base64, another ledger's bytes, a skipped or duplicated ledger, a JSON-RPC error, or
 * no answer at all until the client gives up (`hang`).
 */
import { xdr } from "@stellar/stellar-sdk";
import { openStore } from "../../lib/blob/mod.ts";
import { openLake } from "../../lib/source/lake.ts";
import { type Network, passphraseOf } from "../../lib/source/network.ts";

export type FaultKind =
  | "status"
  | "json"
  | "shape"
  | "base64"
  | "sequence"
  | "skip"
  | "duplicate"
  | "truncate"
  | "rpcError"
  | "hang";

export interface Fault {
  kind: FaultKind;
  /** The method it hits; any when absent. */
  method?: string;
  /** How many matching calls it hits (default 1; Infinity: all). */
  times?: number;
  /** "status": the HTTP status (default 503). */
  status?: number;
  /** "rpcError": the JSON-RPC error. */
  code?: number;
  message?: string;
  /** Ledger faults: the ledger to spoil, when in the page (default: the page's first). */
  at?: number;
  /** getLedgers only: hits just the calls for the page starting at this ledger. */
  from?: number;
}

export interface Call {
  method: string;
  params: unknown;
  /** HTTP status answered. */
  status: number;
  /** The request URL (with its query) and Authorization header, as received. */
  url: string;
  authorization: string | null;
}

export interface RpcServerOptions {
  /** Lake directory whose ledgers `from`..`to` are served. */
  lake: string;
  network: Network;
  from: number;
  to: number;
  /** The window held at start (default from..to). */
  oldest?: number;
  latest?: number;
  /** Passphrase getNetwork answers (default the network's). */
  passphrase?: string;
  /** stellar-rpc's defaults: a request may ask for up to 200 ledgers, 50 when it says nothing. */
  maxLimit?: number;
  defaultLimit?: number;
  /** Answer at most this many ledgers per call, whatever the limit (a node may return fewer). */
  pageCap?: number;
}

export interface TestRpcServer {
  /** The node's endpoint, `http://127.0.0.1:PORT/`. */
  endpoint: string;
  /** The bronze source URL, `rpc+http://127.0.0.1:PORT/`. */
  url: string;
  calls: Call[];
  /** The ledgers held now; move it to make the node follow the network or forget old ledgers. */
  window: { oldest: number; latest: number };
  fail(fault: Fault): void;
  stop(): Promise<void>;
}

interface Served {
  xdr: Uint8Array;
  base64: string;
  headerXdr: string;
  hash: string;
  closeTime: string;
  protocolVersion: number;
}

interface Encoder {
  encode(value: unknown): Uint8Array;
}

const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** The fields stellar-rpc reports for a ledger, read with the SDK (not bronze's decoder). */
function describe(bytes: Uint8Array): Served {
  // deno-lint-ignore no-explicit-any
  const wire = xdr.LedgerCloseMeta.fromXdr(bytes).toXdrObject() as any;
  const entry = (wire.v0 ?? wire.v1 ?? wire.v2).ledgerHeader;
  const headerXdr = (xdr.LedgerHeaderHistoryEntry.schema as unknown as Encoder).encode(entry);
  return {
    xdr: bytes,
    base64: bytes.toBase64(),
    headerXdr: headerXdr.toBase64(),
    hash: toHex(entry.hash),
    closeTime: String(entry.header.scpValue.closeTime),
    protocolVersion: entry.header.ledgerVersion,
  };
}

export async function startRpcServer(opts: RpcServerOptions): Promise<TestRpcServer> {
  const ledgers = new Map<number, Served>();
  const lake = await openLake(openStore(opts.lake), opts.network);
  try {
    for await (const l of lake.stream(opts.from, opts.to)) ledgers.set(l.sequence, describe(l.xdr));
  } finally {
    await lake.close();
  }
  const maxLimit = opts.maxLimit ?? 200;
  const defaultLimit = opts.defaultLimit ?? 50;
  const window = { oldest: opts.oldest ?? opts.from, latest: opts.latest ?? opts.to };
  const calls: Call[] = [];
  const faults: Fault[] = [];
  const stopping = new AbortController();

  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json" },
    });
  const rpcError = (id: unknown, code: number, message: string) =>
    json({ jsonrpc: "2.0", id, error: { code, message } });

  /** The ledger a getLedgers call asks for first (by startLedger, or after its cursor). */
  const pageStart = (params: Record<string, unknown>) => {
    const cursor = (params.pagination as { cursor?: string } | undefined)?.cursor;
    return cursor ? Number(cursor) + 1 : Number(params.startLedger);
  };

  function takeFault(method: string, params: Record<string, unknown>): Fault | undefined {
    const f = faults.find((f) =>
      (f.method ?? method) === method && (f.times ?? 1) > 0 &&
      (f.from === undefined || (method === "getLedgers" && pageStart(params) === f.from))
    );
    if (f) f.times = (f.times ?? 1) - 1;
    return f;
  }

  /** getLedgers as stellar-rpc answers it, or its JSON-RPC error [code, message]. */
  function getLedgers(params: Record<string, unknown>): unknown {
    const { oldest, latest } = window;
    const pagination = (params.pagination ?? undefined) as
      | { cursor?: string; limit?: number }
      | undefined;
    const startLedger = Number(params.startLedger ?? 0);
    const range =
      `the oldest ledger: ${oldest} and the latest ledger: ${latest} for this rpc instance`;
    if (pagination?.cursor) {
      if (startLedger !== 0) {
        return [
          -32600,
          `startLedger (${startLedger}) and cursor (${pagination.cursor}) cannot both be set`,
        ];
      }
    } else if (startLedger < oldest || startLedger > latest) {
      return [-32600, `start ledger (${startLedger}) must be between ${range}`];
    }
    if ((pagination?.limit ?? 0) > maxLimit) return [-32600, `limit must not exceed ${maxLimit}`];
    let start = startLedger;
    if (pagination?.cursor) {
      start = Number(pagination.cursor) + 1;
      if (!Number.isInteger(start) || start < oldest || start > latest) {
        return [-32602, `cursor ('${pagination.cursor}') must be between ${range}`];
      }
    }
    const limit = Math.min(pagination?.limit || defaultLimit, opts.pageCap ?? Infinity);
    const out = [];
    for (let seq = start; seq < start + limit && seq <= latest; seq++) {
      const l = ledgers.get(seq);
      if (!l) return [-32603, `error fetching ledgers from db: ledger ${seq} not found`];
      out.push({
        hash: l.hash,
        sequence: seq,
        ledgerCloseTime: l.closeTime,
        headerXdr: l.headerXdr,
        metadataXdr: l.base64,
      });
    }
    const cursor = out.length ? String(out[out.length - 1].sequence) : String(start - 1);
    return {
      ledgers: out,
      latestLedger: latest,
      latestLedgerCloseTime: Number(ledgers.get(latest)?.closeTime ?? 0),
      oldestLedger: oldest,
      oldestLedgerCloseTime: Number(ledgers.get(oldest)?.closeTime ?? 0),
      cursor,
    };
  }

  function answer(method: string, params: Record<string, unknown>): unknown {
    const { oldest, latest } = window;
    switch (method) {
      case "getLedgers":
        return getLedgers(params);
      case "getHealth":
        return {
          status: "healthy",
          latestLedger: latest,
          oldestLedger: oldest,
          ledgerRetentionWindow: latest - oldest + 1,
        };
      case "getNetwork":
        return {
          passphrase: opts.passphrase ?? passphraseOf(opts.network),
          protocolVersion: ledgers.get(latest)?.protocolVersion ?? 0,
          ...(opts.network === "pubnet" ? {} : { friendbotUrl: "https://friendbot.stellar.org/" }),
        };
      case "getLatestLedger": {
        const l = ledgers.get(latest)!;
        return {
          id: l.hash,
          protocolVersion: l.protocolVersion,
          sequence: latest,
          closeTime: l.closeTime,
          headerXdr: l.headerXdr,
          metadataXdr: l.base64,
        };
      }
    }
    return [-32601, "method not found"];
  }

  /** Spoils one ledger of a getLedgers page, as `kind` says. */
  function spoil(result: { ledgers: Array<Record<string, unknown>> }, f: Fault): void {
    const list = result.ledgers;
    if (!list.length) return;
    let i = list.findIndex((l) => l.sequence === f.at);
    if (i < 0) i = 0;
    const seq = list[i].sequence as number;
    switch (f.kind) {
      case "base64":
        list[i].metadataXdr = "this is not base64!";
        break;
      case "sequence": {
        const other = ledgers.get(seq + 1) ?? ledgers.get(seq - 1)!;
        list[i].metadataXdr = other.base64;
        break;
      }
      case "skip":
        list.splice(i, 1);
        break;
      case "duplicate":
        list.splice(i, 0, { ...list[i] });
        break;
      case "truncate":
        list[i].metadataXdr = ledgers.get(seq)!.xdr.subarray(0, -40).toBase64();
        break;
    }
  }

  async function handle(req: Request): Promise<Response> {
    let body: { id?: unknown; method?: string; params?: Record<string, unknown> };
    try {
      body = await req.json();
    } catch {
      return rpcError(null, -32700, "parse error");
    }
    const method = String(body.method);
    const call: Call = {
      method,
      params: body.params,
      status: 200,
      url: req.url,
      authorization: req.headers.get("authorization"),
    };
    calls.push(call);
    const fault = takeFault(method, body.params ?? {});
    const respond = (r: Response) => {
      call.status = r.status;
      return r;
    };
    switch (fault?.kind) {
      case "status":
        return respond(new Response("unavailable", { status: fault.status ?? 503 }));
      case "json":
        return respond(
          new Response(`{"jsonrpc":"2.0","id":1,"result":{"ledgers":[{"seq`, {
            headers: { "content-type": "application/json" },
          }),
        );
      case "shape":
        return respond(json({ jsonrpc: "2.0", id: body.id, result: { ledgers: "none" } }));
      case "rpcError":
        return respond(rpcError(body.id, fault.code ?? -32603, fault.message ?? "internal error"));
      case "hang":
        // No answer: the client gives up; the handler ends when the server stops.
        await new Promise((resolve) => {
          if (stopping.signal.aborted) resolve(null);
          stopping.signal.addEventListener("abort", resolve, { once: true });
        });
        return respond(new Response(null, { status: 504 }));
    }
    const result = answer(method, body.params ?? {});
    if (Array.isArray(result)) return respond(rpcError(body.id, result[0], result[1]));
    if (fault) spoil(result as { ledgers: Array<Record<string, unknown>> }, fault);
    return respond(json({ jsonrpc: "2.0", id: body.id, result }));
  }

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => req.method === "POST" ? handle(req) : new Response("POST only", { status: 405 }),
  );
  const endpoint = `http://127.0.0.1:${server.addr.port}/`;
  return {
    endpoint,
    url: `rpc+${endpoint}`,
    calls,
    window,
    fail: (fault) => void faults.push({ ...fault }),
    async stop() {
      if (stopping.signal.aborted) return await server.finished;
      stopping.abort();
      await server.shutdown();
    },
  };
}
