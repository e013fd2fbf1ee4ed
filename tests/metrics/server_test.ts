import assert from "node:assert/strict";
import { BronzeError } from "../../lib/runtime/errors.ts";
import { parseListenAddress, serveMetrics } from "../../lib/metrics/server.ts";
import { StatusBoard } from "../../lib/status/board.ts";

const NOTHING = { render: () => "" };
const OK = { check: () => ({ ok: true, message: "ok" }) };

Deno.test("listen address: host:port, [ipv6]:port and :port parse; anything else is one line naming the value", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:9464"), { hostname: "127.0.0.1", port: 9464 });
  assert.deepEqual(parseListenAddress("localhost:0"), { hostname: "localhost", port: 0 });
  assert.deepEqual(parseListenAddress("[::1]:9464"), { hostname: "::1", port: 9464 });
  assert.deepEqual(parseListenAddress(":9464"), { hostname: "0.0.0.0", port: 9464 });
  assert.deepEqual(parseListenAddress("metrics.internal:65535"), {
    hostname: "metrics.internal",
    port: 65535,
  });

  const problems: Record<string, string> = {
    "abc": 'must be host:port (e.g. 127.0.0.1:9464), got "abc"',
    "": 'must be host:port (e.g. 127.0.0.1:9464), got ""',
    "http://localhost:9464": 'must be host:port (e.g. 127.0.0.1:9464), got "http://localhost:9464"',
    "localhost:9464/metrics": 'must end in a port from 0 to 65535, got "localhost:9464/metrics"',
    "bad host:1": 'must be host:port (e.g. 127.0.0.1:9464), got "bad host:1"',
    "::1:9464": 'must be host:port with an IPv6 host in brackets (e.g. [::1]:9464), got "::1:9464"',
    "[::1]": 'must be host:port with an IPv6 host in brackets (e.g. [::1]:9464), got "[::1]"',
    "localhost:": 'must end in a port from 0 to 65535, got "localhost:"',
    "localhost:http": 'must end in a port from 0 to 65535, got "localhost:http"',
    "localhost:65536": 'must end in a port from 0 to 65535, got "localhost:65536"',
    "localhost:-1": 'must end in a port from 0 to 65535, got "localhost:-1"',
  };
  for (const [raw, problem] of Object.entries(problems)) {
    assert.equal(parseListenAddress(raw), problem, raw);
    // The settings layer prefixes the value's name: "METRICS_ADDR must be host:port ...".
  }
});

Deno.test("serveMetrics: a bad address is a one-line BronzeError", () => {
  assert.throws(
    () => serveMetrics("abc", NOTHING, OK),
    (err) =>
      err instanceof BronzeError &&
      err.message === 'metrics address must be host:port (e.g. 127.0.0.1:9464), got "abc"',
  );
});

Deno.test("serveMetrics: an address in use is a one-line BronzeError naming it; close() frees the port", async () => {
  const first = serveMetrics("127.0.0.1:0", NOTHING, OK);
  let second: { close(): Promise<void> } | undefined;
  try {
    assert.equal(first.hostname, "127.0.0.1");
    assert.ok(first.port > 0, "port 0 picks a free port, reported back");
    assert.equal(first.url, `http://127.0.0.1:${first.port}`);
    const addr = `127.0.0.1:${first.port}`;
    assert.throws(
      () => serveMetrics(addr, NOTHING, OK),
      (err) =>
        err instanceof BronzeError && err.message === `metrics address ${addr} is already in use`,
    );
    assert.equal(await fetch(`${first.url}/healthz`).then((r) => r.text()), "ok\n");
    await first.close();
    await first.close(); // twice is harmless (a signal handler and a finally block may both call)
    second = serveMetrics(addr, NOTHING, { check: () => ({ ok: false, message: "second" }) });
    const res = await fetch(`http://${addr}/healthz`);
    assert.deepEqual([res.status, await res.text()], [503, "second\n"]);
  } finally {
    await first.close();
    await second?.close();
  }
});

Deno.test("serveMetrics: an address this machine does not have is a one-line BronzeError", () => {
  // 192.0.2.0/24 is reserved for documentation: never assigned to a local interface. Binding
  // fails locally, no packet is sent.
  assert.throws(
    () => serveMetrics("192.0.2.1:9464", NOTHING, OK),
    (err) =>
      err instanceof BronzeError &&
      err.message === "cannot serve metrics on 192.0.2.1:9464: Cannot assign requested address",
  );
});

Deno.test("serveMetrics with the status page: / and /status.json, gzipped when asked, read-only, a policy that forbids anything else", async () => {
  const board = new StatusBoard({ refreshSeconds: 5 });
  const server = serveMetrics("127.0.0.1:0", NOTHING, OK, board);
  try {
    const page = await fetch(`${server.url}/`, { headers: { "Accept-Encoding": "gzip" } });
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(page.headers.get("content-encoding"), "gzip");
    assert.match(
      page.headers.get("content-security-policy")!,
      /^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'$/,
    );
    const html = await page.text();
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /The catalog cannot be read: not open yet/);
    assert.doesNotMatch(html, /<form|<link|<img|src="http/);
    const data = await fetch(`${server.url}/status.json`);
    assert.equal(data.headers.get("content-type"), "application/json; charset=utf-8");
    const doc = await data.json();
    assert.equal(doc.bronze_status, 1);
    assert.equal(doc.refresh_seconds, 5);
    const plain = await fetch(`${server.url}/status.json`, {
      headers: { "Accept-Encoding": "identity" },
    });
    assert.equal(plain.headers.get("content-encoding"), null);
    assert.equal((await plain.json()).bronze_status, 1);
    for (const path of ["/", "/status.json"]) {
      const post = await fetch(`${server.url}${path}`, { method: "POST", body: "x" });
      assert.deepEqual([post.status, await post.text()], [405, "method POST not allowed\n"]);
    }
    const lost = await fetch(`${server.url}/index.html`);
    assert.deepEqual([lost.status, await lost.text()], [
      404,
      "not found: /index.html (try /metrics, /healthz, / or /status.json)\n",
    ]);
  } finally {
    await server.close();
  }
});
