/**
 * The HTTP side of `--metrics-addr`: Prometheus scrapes `/metrics`, an orchestrator probes
 * `/healthz` (200 or 503, with one plain-text line saying why), and a person opens `/`, the status
 * page, which refreshes itself from `/status.json` (lib/status/). Only GET and HEAD: nothing
 * served here can change anything.
 */
import { BronzeError } from "../runtime/errors.ts";
import { CONTENT_TYPE } from "./exposition.ts";
import type { HealthStatus } from "./health.ts";

export interface ListenAddress {
  /** "0.0.0.0" when the address gave no host (":9464"): every interface, as Go servers read it. */
  hostname: string;
  /** 0 picks a free port. */
  port: number;
}

/**
 * Parses `host:port` (`127.0.0.1:9464`, `localhost:9464`, `[::1]:9464`, `:9464`). A bad value
 * gives the problem as a string that reads after the value's name:
 * `METRICS_ADDR must be host:port (e.g. 127.0.0.1:9464), got "abc"`.
 */
export function parseListenAddress(raw: string): ListenAddress | string {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):([^:]*)$/.exec(raw);
  if (!m) {
    const ipv6 = raw.startsWith("[") || (/:.*:/.test(raw) && !/^[a-z][a-z0-9+.-]*:\/\//i.test(raw));
    return ipv6
      ? `must be host:port with an IPv6 host in brackets (e.g. [::1]:9464), got "${raw}"`
      : `must be host:port (e.g. 127.0.0.1:9464), got "${raw}"`;
  }
  const port = m[3];
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
    return `must end in a port from 0 to 65535, got "${raw}"`;
  }
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port: Number(port) };
}

/** The status page and its data, when the server shows them (lib/status/ makes them). */
export interface StatusPages {
  /** The page: one self-contained HTML document, and its Content-Security-Policy. */
  html(): Promise<{ body: string; csp: string }>;
  /** The page's data (`/status.json`). */
  json(): Promise<string>;
}

const PATHS = ["/metrics", "/healthz", "/", "/status.json"];

export interface MetricsServer {
  /** e.g. http://127.0.0.1:9464 (no trailing slash). */
  readonly url: string;
  readonly hostname: string;
  /** The bound port (the chosen one when the address said 0). */
  readonly port: number;
  /** Stops listening; resolves once the port is free again. */
  close(): Promise<void>;
}

/**
 * Listens on `addr` at once (so a port in use fails the command before it copies anything) and
 * serves until close(). Throws a one-line BronzeError for a bad or unusable address.
 */
export function serveMetrics(
  addr: string,
  metrics: { render(): string },
  health: { check(): HealthStatus },
  status?: StatusPages,
): MetricsServer {
  const parsed = parseListenAddress(addr);
  if (typeof parsed === "string") throw new BronzeError(`metrics address ${parsed}`);
  const paths = status ? PATHS : PATHS.slice(0, 2);
  const handler = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (!paths.includes(path)) {
      return _text(
        404,
        `not found: ${path} (try ${paths.slice(0, -1).join(", ")} or ${paths.at(-1)})`,
      );
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return _text(405, `method ${req.method} not allowed`, { Allow: "GET, HEAD" });
    }
    if (path === "/healthz") {
      const h = health.check();
      return _text(h.ok ? 200 : 503, h.message);
    }
    if (path === "/metrics") {
      return new Response(metrics.render(), {
        headers: { "Content-Type": CONTENT_TYPE, "Cache-Control": "no-store" },
      });
    }
    try {
      if (path === "/status.json") {
        return _compressed(req, await status!.json(), {
          "Content-Type": "application/json; charset=utf-8",
          "Cache-Control": "no-store",
        });
      }
      const page = await status!.html();
      return _compressed(req, page.body, {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Content-Security-Policy": page.csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
      });
    } catch (err) {
      return _text(503, `status unavailable: ${_firstLine(err)}`);
    }
  };
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname: parsed.hostname, port: parsed.port, onListen() {} }, handler);
  } catch (err) {
    throw new BronzeError(
      err instanceof Deno.errors.AddrInUse
        ? `metrics address ${addr} is already in use`
        : `cannot serve metrics on ${addr}: ${_firstLine(err)}`,
    );
  }
  const { hostname, port } = server.addr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    hostname,
    port,
    close: () => closed ??= server.shutdown(),
  };
}

/**
 * Gzipped when the client takes it: the page and its data compress about tenfold (a strip of
 * thousands of cells repeats itself), which a `kubectl port-forward` or an SSH tunnel feels.
 */
function _compressed(req: Request, text: string, headers: Record<string, string>): Response {
  if (req.method === "HEAD" || !/\bgzip\b/.test(req.headers.get("accept-encoding") ?? "")) {
    return new Response(text, { headers });
  }
  const body = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Response(body, {
    headers: { ...headers, "Content-Encoding": "gzip", Vary: "Accept-Encoding" },
  });
}

function _text(status: number, line: string, headers: Record<string, string> = {}): Response {
  return new Response(line + "\n", {
    status,
    headers: {
      "Content-Type": "text/plain; charset=utf-8",
      "Cache-Control": "no-store",
      ...headers,
    },
  });
}

/** "Cannot assign requested address (os error 99)" -> "Cannot assign requested address". */
function _firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split("\n")[0].replace(/ \(os error \d+\)$/, "");
}
