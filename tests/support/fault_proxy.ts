/**
 * A fault-injecting HTTP proxy for tests: it stands in front of an object-store server (s3rver,
 * the GCS emulator) or any HTTP service on 127.0.0.1 and, for a share of the requests, does what
 * real networks and services do:
 *
 * - `server`: a 500 with the service's own error body (S3 InternalError, GCS backendError);
 * - `throttle`: S3's 503 SlowDown or a 429; GCS's 429 rateLimitExceeded;
 * - `lostAnswer`: a write (PUT, POST, DELETE) is forwarded and done, then the connection is
 *   dropped before its answer: the client cannot know it happened;
 * - `cutBody`: the answer's headers and the first part of its body, then the connection drops;
 * - `stall`: no answer at all for `stallMs`, then the connection drops (never forwarded);
 * - `late`: forwarded and done, but the answer is held for `stallMs` before it is sent whole (a
 *   slow service): a client that gave up on it meanwhile gets it on a request it abandoned.
 *
 * Each rate is the share of the requests a fault can happen to: writes for `lostAnswer`, answers
 * with a body (GET) for `cutBody`, any request for the rest. Which request gets which fault is
 * decided by a seeded hash of the request (method, path and how many times that same request was
 * seen), not by arrival order, so the seed (printed at start; FAULT_SEED=<n> replays it) gives the
 * same faults however concurrent requests interleave. A request is never faulted more than
 * MAX_IN_A_ROW times running, so every run ends. `atLeastOnce` kinds are sure to happen: each is
 * injected into one of the first few requests it can happen to (which one, the seed says), so a
 * test never passes only because the dice spared it.
 *
 * Location headers that name the server (a GCS resumable upload's session URL) are rewritten to
 * name the proxy, so follow-up requests come through it too.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export type Fault = "server" | "throttle" | "lostAnswer" | "cutBody" | "stall" | "late";
export const FAULTS: readonly Fault[] = [
  "server",
  "throttle",
  "lostAnswer",
  "cutBody",
  "stall",
  "late",
];

/** The share of requests that get each fault (0..1; their sum at most 1). */
export type FaultRates = Partial<Record<Fault, number>>;

export interface FaultProxyOptions {
  /** The server behind the proxy: http://127.0.0.1:PORT. */
  target: string;
  /** Whose error bodies to answer with. */
  flavor: "s3" | "gcs" | "plain";
  rates?: FaultRates;
  /** Default: FAULT_SEED from the environment, else a fresh random one. */
  seed?: number;
  /** How long a stalled request, or a late answer, is held (default 5 s). */
  stallMs?: number;
  /** Faults sure to happen at least once (see the top of this file). */
  atLeastOnce?: readonly Fault[];
  /** The most faults one request meets running (default 4; Infinity: a service that is down). */
  maxInARow?: number;
  /** Where the seed is told (default stderr). */
  log?: (line: string) => void;
}

export interface FaultProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly seed: number;
  /** Faults injected so far, by kind, and requests passed through untouched. */
  readonly stats: Record<Fault | "passed", number>;
  /**
   * Resolves once every late answer so far has been sent (or could not be: the client had
   * closed its connection) and its connection is closed. A client that gave up on the request
   * closes it; one that left it open would hold a connection per late answer.
   */
  lateAnswersClosed(): Promise<void>;
  /** New rates from now on (e.g. none, for a clean check at the end). */
  setRates(rates: FaultRates): void;
  stop(): Promise<void>;
}

const MAX_IN_A_ROW = 4;
/** FAULT_DEBUG=1: every error answer of the server behind, on stderr. */
const DEBUG = Deno.env.get("FAULT_DEBUG") === "1";

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const seed = opts.seed ?? (Number(Deno.env.get("FAULT_SEED")) ||
    crypto.getRandomValues(new Uint32Array(1))[0]);
  const stallMs = opts.stallMs ?? 5000;
  const target = new URL(opts.target);
  let rates: FaultRates = { ...opts.rates };
  const stats = Object.fromEntries([...FAULTS, "passed"].map((k) => [k, 0])) as FaultProxy["stats"];
  const seen = new Map<string, { n: number; row: number }>();
  const sockets = new Set<import("node:net").Socket>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  /** The connections of late answers not yet closed. */
  const lateOpen = new Set<Promise<void>>();

  /** Eligible requests seen per kind, and when the sure ones are due. */
  const eligibleSeen = Object.fromEntries(FAULTS.map((f) => [f, 0])) as Record<Fault, number>;
  const dueAt = Object.fromEntries(
    (opts.atLeastOnce ?? []).map((f) => [f, 1 + (hash(`${seed} due ${f}`) % 5)]),
  ) as Partial<Record<Fault, number>>;

  /** This request's fault, from the seed and the request itself (see the top of this file). */
  const decide = (method: string, path: string): Fault | null => {
    const id = `${method} ${path}`;
    const s = seen.get(id) ?? { n: 0, row: 0 };
    seen.set(id, s);
    s.n++;
    const write = method === "PUT" || method === "POST" || method === "DELETE";
    const eligible = FAULTS.filter((f) =>
      f === "lostAnswer" ? write : f === "cutBody" ? method === "GET" : true
    );
    for (const f of eligible) eligibleSeen[f]++;
    let fault: Fault | null = null;
    const due = eligible.find((f) =>
      stats[f] === 0 && dueAt[f] !== undefined && eligibleSeen[f] >= dueAt[f]!
    );
    if (due) fault = due;
    else {
      const roll = unit(hash(`${seed} ${id} ${s.n}`));
      let edge = 0;
      for (const f of eligible) {
        edge += rates[f] ?? 0;
        if (roll < edge) {
          fault = f;
          break;
        }
      }
    }
    if (fault && s.row >= (opts.maxInARow ?? MAX_IN_A_ROW)) fault = null;
    s.row = fault ? s.row + 1 : 0;
    return fault;
  };

  const server = http.createServer((req, res) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("end", () => {
      const body = concat(chunks);
      let fault = decide(req.method ?? "GET", req.url ?? "/");
      stats[fault ?? "passed"]++;
      if (fault === "server" || fault === "throttle") {
        const [status, type, text] = errorBody(opts.flavor, fault, stats[fault]);
        // The body is consumed: the client may reuse the connection, as after a real 5xx.
        res.writeHead(status, { "content-type": type, "content-length": text.length });
        res.end(text);
        return;
      }
      if (fault === "stall") {
        const t = setTimeout(() => {
          timers.delete(t);
          req.socket.destroy();
        }, stallMs);
        timers.add(t);
        return;
      }
      if (fault === "late") {
        const socket = req.socket;
        const closed = new Promise<void>((resolve) => {
          if (socket.destroyed) resolve();
          else socket.once("close", () => resolve());
        });
        lateOpen.add(closed);
        closed.then(() => lateOpen.delete(closed));
      }
      forward(req, body, (upstream, answer) => {
        if (DEBUG && (upstream.statusCode ?? 0) >= 400) {
          console.error(
            `[fault-proxy] ${req.method} ${req.url} (${body.length} bytes) -> ${upstream.statusCode}: ` +
              new TextDecoder().decode(answer).slice(0, 300),
          );
        }
        if (fault === "lostAnswer") {
          req.socket.destroy(); // done upstream; its answer never arrives
          return;
        }
        const headers = { ...upstream.headers };
        if (typeof headers.location === "string") {
          headers.location = headers.location.replace(target.origin, proxyUrl);
        }
        if (fault === "late") {
          const t = setTimeout(() => {
            timers.delete(t);
            if (req.socket.destroyed) return;
            send(res, upstream.statusCode, headers, answer, req.method);
          }, stallMs);
          timers.add(t);
          return;
        }
        if (fault === "cutBody" && answer.length < 2) {
          // Nothing to cut: it passes after all (a sure cut waits for the next answer).
          stats.cutBody--;
          stats.passed++;
          fault = null;
        }
        if (fault === "cutBody") {
          // Announce the whole body, send part of it, drop the connection.
          headers["content-length"] = String(answer.length);
          delete headers["transfer-encoding"];
          res.writeHead(upstream.statusCode ?? 502, headers);
          res.write(answer.subarray(0, Math.max(1, Math.floor(answer.length / 2))), () => {
            req.socket.destroy();
          });
          return;
        }
        send(res, upstream.statusCode, headers, answer, req.method);
      }, () => req.socket.destroy());
    });
  });

  /** Passes an answer on whole. */
  const send = (
    res: http.ServerResponse,
    status: number | undefined,
    headers: http.OutgoingHttpHeaders,
    answer: Uint8Array,
    method: string | undefined,
  ) => {
    // A HEAD's headers describe the body it does not carry: passed on as they are.
    if (method !== "HEAD") {
      headers["content-length"] = String(answer.length);
      delete headers["transfer-encoding"];
    }
    res.writeHead(status ?? 502, headers);
    res.end(answer);
  };

  /** Sends the request on to the server and hands its whole answer over. */
  const forward = (
    req: http.IncomingMessage,
    body: Uint8Array,
    done: (upstream: http.IncomingMessage, answer: Uint8Array) => void,
    failed: () => void,
  ) => {
    // The body is sent whole, with its length: the client's framing (chunked) is not.
    const headers = { ...req.headers, host: target.host };
    delete headers["content-length"];
    delete headers["transfer-encoding"];
    const out = http.request({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: { ...headers, "content-length": String(body.length) },
    }, (upstream) => {
      const parts: Uint8Array[] = [];
      upstream.on("data", (c: Uint8Array) => parts.push(c));
      upstream.on("end", () => done(upstream, concat(parts)));
      upstream.on("error", failed);
    });
    out.on("error", failed);
    out.end(body);
  };

  server.on("clientError", (err: Error, socket: import("node:net").Socket) => {
    if (DEBUG) console.error(`[fault-proxy] a request that does not parse: ${err.message}`);
    socket.destroy();
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const proxyUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  (opts.log ?? ((l) => console.error(l)))(
    `[fault-proxy] ${proxyUrl} -> ${target.origin}, seed ${seed} (FAULT_SEED=${seed} replays it)`,
  );
  return {
    url: proxyUrl,
    seed,
    stats,
    async lateAnswersClosed() {
      while (lateOpen.size > 0) await Promise.all(lateOpen);
    },
    setRates(r) {
      rates = { ...r };
    },
    async stop() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The error answer a service gives for `fault`: status, content type, body. */
function errorBody(flavor: FaultProxyOptions["flavor"], fault: Fault, n: number) {
  if (flavor === "s3") {
    const xml = (code: string, message: string) =>
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
      `<Message>${message}</Message><RequestId>FAULT${n}</RequestId></Error>`;
    if (fault === "server") {
      return [
        500,
        "application/xml",
        xml("InternalError", "We encountered an internal error. Please try again."),
      ] as const;
    }
    // S3 throttles with 503 SlowDown; other S3-compatible services answer 429.
    return n % 2
      ? [503, "application/xml", xml("SlowDown", "Please reduce your request rate.")] as const
      : [429, "application/xml", xml("TooManyRequests", "Too many requests.")] as const;
  }
  if (flavor === "gcs") {
    const json = (code: number, reason: string, message: string) =>
      JSON.stringify({ error: { code, message, errors: [{ domain: "global", reason, message }] } });
    return fault === "server"
      ? [503, "application/json", json(503, "backendError", "Backend Error")] as const
      : [
        429,
        "application/json",
        json(429, "rateLimitExceeded", "The rate of requests is too high."),
      ] as const;
  }
  return fault === "server"
    ? [500, "text/plain", "internal error"] as const
    : [429, "text/plain", "too many requests"] as const;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** FNV-1a, then a murmur finaliser: a well-spread 32-bit hash of a string. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function unit(h: number): number {
  return h / 0x1_0000_0000;
}
