import assert from "node:assert/strict";
import { openStore } from "../../lib/blob/mod.ts";
import { openLake } from "../../lib/source/lake.ts";
import { openSource } from "../../lib/source/mod.ts";
import type { Network } from "../../lib/source/network.ts";
import { openRpc, type RpcNode, type RpcOptions } from "../../lib/source/rpc.ts";
import { DEFAULT_RETRY_POLICY, Retrier } from "../../lib/runtime/retry.ts";
import { decodeLedger } from "../../lib/source/ledger.ts";
import type { LedgerSource, RawLedger } from "../../lib/source/source.ts";
import { PartitionFileWriter } from "../../lib/table/writer.ts";
import { SAMPLES, SAMPLES_ABSENT, syntheticLake, tempDir } from "../support/lakes.ts";
import {
  type RpcServerOptions,
  startRpcServer,
  type TestRpcServer,
} from "../support/rpc_server.ts";

const TESTNET_FIRST = 1410048;
const TESTNET_LAST = 1410367;
/** Three attempts per call with no wait between them, so failure tests are quick. */
function fast(attempts = 3, attemptTimeoutMs = DEFAULT_RETRY_POLICY.attemptTimeoutMs): RpcOptions {
  return {
    pageSize: 25,
    retry: new Retrier({
      ...DEFAULT_RETRY_POLICY,
      maxAttempts: attempts,
      baseDelayMs: 1,
      maxDelayMs: 1,
      attemptTimeoutMs,
    }),
  };
}
const FAST = fast();

/** How a call that kept failing is reported: the last problem, then the attempts (exit 75). */
const GAVE_UP = (n: number) => ` \\(still failing after ${n} attempts over [^)]+\\)$`;

async function collect(it: AsyncIterable<RawLedger>): Promise<RawLedger[]> {
  const out: RawLedger[] = [];
  for await (const l of it) out.push(l);
  return out;
}

async function lakeLedgers(dir: string, network: Network, start: number, end: number) {
  const lake = await openLake(openStore(dir), network);
  try {
    return await collect(lake.stream(start, end));
  } finally {
    await lake.close();
  }
}

/** Runs `fn` against a node serving the testnet sample, stopping both whatever happens. */
async function withTestnet(
  fn: (server: TestRpcServer) => Promise<void>,
  opts: Partial<RpcServerOptions> = {},
): Promise<void> {
  const server = await startRpcServer({
    lake: `${SAMPLES}testnet`,
    network: "testnet",
    from: TESTNET_FIRST,
    to: TESTNET_LAST,
    ...opts,
  });
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

async function withSource<T>(
  url: string,
  fn: (source: RpcNode) => Promise<T>,
  opts: RpcOptions = FAST,
): Promise<T> {
  const source = await openRpc(url, "testnet", opts);
  try {
    return await fn(source);
  } finally {
    await source.close();
  }
}

const getLedgersCalls = (s: TestRpcServer) => s.calls.filter((c) => c.method === "getLedgers");
const real = { ignore: !!SAMPLES_ABSENT };

Deno.test({
  ...real,
  name: "real testnet ledgers: RPC yields the lake's exact bytes, page after page by cursor",
  fn: () =>
    withTestnet(async (server) => {
      const fromLake = await lakeLedgers(
        `${SAMPLES}testnet`,
        "testnet",
        TESTNET_FIRST,
        TESTNET_LAST,
      );
      const source = await openSource(server.url, "testnet"); // the CLI's way in
      try {
        assert.equal(source.type, "live");
        assert.equal(source.url, server.url);
        const fromRpc = await collect(source.stream(TESTNET_FIRST, TESTNET_LAST, { prefetch: 2 }));
        assert.equal(fromRpc.length, 320);
        for (let i = 0; i < fromLake.length; i++) {
          assert.equal(fromRpc[i].sequence, TESTNET_FIRST + i);
          assert.deepEqual(fromRpc[i].xdr, fromLake[i].xdr, `ledger ${TESTNET_FIRST + i}`);
          assert.equal(fromRpc[i].key, `RPC ${server.endpoint}`);
        }
      } finally {
        await source.close?.();
      }
      // Default pages of 10: the first by startLedger, the others after the previous cursor.
      const pages = getLedgersCalls(server);
      assert.equal(pages.length, 32);
      assert.deepEqual(pages[0].params, { startLedger: TESTNET_FIRST, pagination: { limit: 10 } });
      pages.slice(1).forEach((c, i) =>
        assert.deepEqual(c.params, {
          pagination: { cursor: String(TESTNET_FIRST + 10 * (i + 1) - 1), limit: 10 },
        })
      );
    }),
});

Deno.test({
  ...real,
  name: "real testnet ledgers: the same Parquet file from the lake and from RPC",
  fn: () =>
    withTestnet(async (server) => {
      await using dir = await tempDir("rpc-parquet");
      const meta = { bronzeVersion: "test", eraId: "era", network: "testnet" };
      const build = async (source: LedgerSource, name: string) => {
        const file = await PartitionFileWriter.create(`${dir.path}/${name}`, meta);
        for await (const raw of source.stream(TESTNET_FIRST, TESTNET_LAST)) {
          await file.write(decodeLedger(raw.xdr));
        }
        return await file.finish();
      };
      const lake = await openSource(`${SAMPLES}testnet`, "testnet");
      const fromLake = await build(lake, "lake.parquet").finally(() => lake.close?.());
      const fromRpc = await withSource(server.url, (s) => build(s, "rpc.parquet"));
      assert.equal(fromRpc.rows, 320);
      assert.deepEqual(fromRpc, fromLake);
      assert.deepEqual(
        await Deno.readFile(`${dir.path}/rpc.parquet`),
        await Deno.readFile(`${dir.path}/lake.parquet`),
      );
    }),
});

Deno.test("synthetic protocol 23 ledgers: RPC yields the lake's exact bytes", async () => {
  const dir = await syntheticLake({
    network: "testnet",
    start: 2,
    count: 90,
    lcmVersion: 2,
    ledgersPerBatch: 8,
    batchesPerPartition: 4,
  });
  const server = await startRpcServer({ lake: dir, network: "testnet", from: 2, to: 91 });
  try {
    const fromRpc = await withSource(server.url, (s) => collect(s.stream(5, 91)), {
      ...FAST,
      pageSize: 7,
    });
    const fromLake = await lakeLedgers(dir, "testnet", 5, 91);
    assert.deepEqual(fromRpc.map((l) => l.xdr), fromLake.map((l) => l.xdr));
    // The last page asks only for what is left of the range.
    assert.deepEqual(getLedgersCalls(server).at(-1)!.params, {
      pagination: { cursor: "88", limit: 3 },
    });
  } finally {
    await server.stop();
  }
});

Deno.test({
  ...real,
  name: "a node answering fewer ledgers than asked: the stream goes on from its cursor",
  fn: () =>
    withTestnet(async (server) => {
      const got = await withSource(server.url, (s) => collect(s.stream(1410100, 1410160)));
      assert.deepEqual(got.map((l) => l.sequence), [...Array(61)].map((_, i) => 1410100 + i));
      const pages = getLedgersCalls(server);
      assert.equal(pages.length, 9); // 61 ledgers, 7 a page
      assert.deepEqual(pages[1].params, { pagination: { cursor: "1410106", limit: 25 } });
    }, { pageCap: 7 }),
});

Deno.test({
  ...real,
  name: "head() is the node's latest ledger, and follows it",
  fn: () =>
    withTestnet(async (server) => {
      await withSource(server.url, async (source) => {
        assert.equal(await source.head(), TESTNET_LAST);
        server.window.latest = 1410300;
        assert.equal(await source.head(), 1410300);
      });
    }, { oldest: 1410100 }),
});

Deno.test({
  ...real,
  name:
    "prefetch is bounded: a consumer that stops early leaves one page ahead and nothing running",
  fn: () =>
    withTestnet(async (server) => {
      await withSource(server.url, async (source) => {
        for await (const l of source.stream(TESTNET_FIRST, TESTNET_LAST)) {
          assert.equal(l.sequence, TESTNET_FIRST);
          // The page ahead is asked for once the first has arrived...
          for (let i = 0; i < 500 && getLedgersCalls(server).length < 2; i++) {
            await new Promise((r) => setTimeout(r, 10));
          }
          // ...and no further page until this one is consumed.
          await new Promise((r) => setTimeout(r, 100));
          assert.equal(getLedgersCalls(server).length, 2);
          break;
        }
      }, { ...FAST, pageSize: 10 });
    }),
});

// --- the node's window, and its network ---------------------------------------------------------

Deno.test({
  ...real,
  name: "a ledger older than the node's oldest, or newer than its latest: one line naming both",
  fn: () =>
    withTestnet(async (server) => {
      await withSource(server.url, async (source) => {
        await assert.rejects(collect(source.stream(TESTNET_FIRST, 1410200)), {
          name: "BronzeError",
          message: `ledger ${TESTNET_FIRST} is older than the oldest ledger 1410100 that RPC ` +
            `${server.endpoint} holds; copy it from a lake`,
        });
        await assert.rejects(collect(source.stream(1410150, 1410350)), {
          name: "BronzeError",
          message: `ledger 1410350 is newer than the latest ledger 1410300 that RPC ` +
            `${server.endpoint} holds`,
        });
      });
      assert.equal(getLedgersCalls(server).length, 0);
    }, { oldest: 1410100, latest: 1410300 }),
});

Deno.test({
  ...real,
  name: "a node on another network is refused on open",
  fn: () =>
    withTestnet(async (server) => {
      await assert.rejects(openRpc(server.url, "pubnet", FAST), {
        name: "BronzeError",
        message: `RPC ${server.endpoint} is for network passphrase ` +
          `"Test SDF Network ; September 2015", but pubnet is ` +
          `"Public Global Stellar Network ; September 2015"`,
      });
    }),
});

Deno.test("not an RPC URL: the message --source would give, without the credentials", async () => {
  const cases = [
    [
      "rpc+ftp://user:pw@host/x?apikey=secretsecret",
      'source must be rpc+https:// or rpc+http:// for a Stellar RPC node, got "rpc+ftp://host/x"',
    ],
    [
      "rpc+https://user:pw@",
      'source names no RPC host: "rpc+https://" (expected rpc+https://host[:port][/path])',
    ],
  ];
  for (const [url, message] of cases) {
    await assert.rejects(openSource(url, "testnet"), { name: "BronzeError", message });
  }
});

// --- failures: retried while they may pass, then one line naming the endpoint and ledger -------

Deno.test({
  ...real,
  name: "503 and 429 for a while, then the node recovers: the stream completes",
  fn: () =>
    withTestnet(async (server) => {
      server.fail({ kind: "status", method: "getLedgers", status: 503, times: 2 });
      server.fail({ kind: "status", method: "getLedgers", status: 429, times: 1 });
      server.fail({ kind: "status", method: "getHealth", status: 502, times: 1 });
      const got = await withSource(
        server.url,
        (s) => collect(s.stream(1410048, 1410100)),
        fast(4),
      );
      assert.deepEqual(got.map((l) => l.sequence), [...Array(53)].map((_, i) => 1410048 + i));
      const statuses = getLedgersCalls(server).map((c) => c.status);
      assert.deepEqual(statuses, [503, 503, 429, 200, 200, 200]);
    }),
});

Deno.test({
  ...real,
  name: "a node that keeps failing: one line naming the endpoint, the ledger and the last problem",
  fn: () =>
    withTestnet(async (server) => {
      // Pages of 25: the first is served, the second (from 1410073) keeps failing.
      server.fail({ kind: "status", method: "getLedgers", from: 1410073, times: Infinity });
      await withSource(server.url, async (source) => {
        let seen = 0;
        await assert.rejects(
          async () => {
            for await (const l of source.stream(1410048, 1410100)) seen = l.sequence;
          },
          {
            name: "RetryExhaustedError",
            exitCode: 75,
            message: new RegExp(
              `^RPC ${server.endpoint}: getLedgers from ledger 1410073: ` +
                `HTTP 503 Service Unavailable${GAVE_UP(3)}`,
            ),
          },
        );
        assert.equal(seen, 1410072); // every ledger before the failing page was yielded
      });
      assert.deepEqual(getLedgersCalls(server).map((c) => c.status), [200, 503, 503, 503]);
    }),
});

Deno.test({
  ...real,
  name: "a JSON-RPC error that says the request is wrong is not retried",
  fn: () =>
    withTestnet(async (server) => {
      server.fail({
        kind: "rpcError",
        method: "getLedgers",
        code: -32600,
        message: "start ledger (1410048) must be between the oldest ledger: 1410049 and ...",
      });
      await withSource(server.url, async (source) => {
        await assert.rejects(collect(source.stream(1410048, 1410049)), {
          message: `RPC ${server.endpoint}: getLedgers from ledger 1410048: error -32600: ` +
            `start ledger (1410048) must be between the oldest ledger: 1410049 and ...`,
        });
      });
      assert.equal(getLedgersCalls(server).length, 1);
      // A server-side error is.
      server.fail({ kind: "rpcError", method: "getLedgers", code: -32603, times: 2 });
      const got = await withSource(server.url, (s) => collect(s.stream(1410048, 1410049)));
      assert.equal(got.length, 2);
    }),
});

Deno.test({
  ...real,
  name: "a node that does not answer in time: retried, then one line",
  fn: () =>
    withTestnet(async (server) => {
      const opts = fast(3, 300);
      server.fail({ kind: "hang", method: "getLedgers" });
      const got = await withSource(server.url, (s) => collect(s.stream(1410048, 1410050)), opts);
      assert.equal(got.length, 3);
      server.fail({ kind: "hang", method: "getLedgers", times: Infinity });
      await withSource(server.url, async (source) => {
        await assert.rejects(collect(source.stream(1410048, 1410050)), {
          message: new RegExp(
            `^RPC ${server.endpoint}: getLedgers from ledger 1410048: no answer within 300ms` +
              GAVE_UP(3),
          ),
        });
      }, opts);
    }),
});

const GARBAGE: Array<[string, Parameters<TestRpcServer["fail"]>[0], string]> = [
  ["malformed JSON", { kind: "json" }, "response is not JSON"],
  ["the wrong shape", { kind: "shape" }, "response is not a getLedgers result"],
  ["bad base64", { kind: "base64", at: 1410052 }, "metadataXdr of ledger 1410052 is not base64"],
  [
    "another ledger's bytes",
    { kind: "sequence", at: 1410052 },
    "metadataXdr of ledger 1410052: LedgerCloseMeta #0 has ledgerSeq 1410053, expected ledger 1410052",
  ],
  [
    "a missing ledger",
    { kind: "skip", at: 1410052 },
    "returned ledger 1410053 where ledger 1410052 belongs",
  ],
  [
    "a duplicated ledger",
    { kind: "duplicate", at: 1410052 },
    "returned ledger 1410052 where ledger 1410053 belongs",
  ],
];

for (const [what, fault, problem] of GARBAGE) {
  Deno.test({
    ...real,
    name: `garbage from the node (${what}): retried, then one line naming the ledger`,
    fn: () =>
      withTestnet(async (server) => {
        // Once: the retry gets good bytes.
        server.fail({ ...fault, method: "getLedgers" });
        const got = await withSource(server.url, (s) => collect(s.stream(1410050, 1410060)));
        assert.deepEqual(got.map((l) => l.sequence), [...Array(11)].map((_, i) => 1410050 + i));
        // Always: it fails.
        server.fail({ ...fault, method: "getLedgers", times: Infinity });
        await withSource(server.url, async (source) => {
          await assert.rejects(collect(source.stream(1410050, 1410060)), {
            name: "RetryExhaustedError",
            message: new RegExp(
              `^RPC ${server.endpoint}: getLedgers from ledger 1410050: ${RegExp.escape(problem)}${
                GAVE_UP(3)
              }`,
            ),
          });
        });
      }),
  });
}

Deno.test({
  ...real,
  name: "corrupt XDR inside metadataXdr is caught as a lake's is",
  fn: () =>
    withTestnet(async (server) => {
      server.fail({ kind: "truncate", method: "getLedgers", at: 1410060, times: Infinity });
      await withSource(server.url, async (source) => {
        await assert.rejects(collect(source.stream(1410055, 1410065)), {
          name: "RetryExhaustedError",
          message: new RegExp(
            `^RPC ${server.endpoint}: getLedgers from ledger 1410055: ` +
              `metadataXdr of ledger 1410060: corrupt XDR \\(ledger 1410060\\): ` +
              `truncated XDR: [^\\n]+${GAVE_UP(3)}`,
          ),
        });
      });
    }),
});

// --- credentials ----------------------------------------------------------------------------------

Deno.test({
  ...real,
  name: "credentials reach the node but are never printed",
  fn: () =>
    withTestnet(async (server) => {
      const port = new URL(server.endpoint).port;
      const url = `rpc+http://alice:s3cr3t-pw@127.0.0.1:${port}/?apikey=TOPSECRETKEY42&x=1`;
      const secrets = ["alice", "s3cr3t-pw", "TOPSECRETKEY42"];
      const clean = (s: string) => {
        for (const secret of secrets) assert.ok(!s.includes(secret), `leaked ${secret}: ${s}`);
      };
      const messages: string[] = [];
      await withSource(url, async (source) => {
        clean(source.url);
        assert.equal(source.url, server.url);
        const [l] = await collect(source.stream(1410048, 1410048));
        clean(l.key);
        server.fail({ kind: "status", method: "getLedgers", times: Infinity });
        await collect(source.stream(1410048, 1410048)).catch((e) => messages.push(e.message));
      });
      await openRpc(url, "pubnet", FAST).catch((e) => messages.push(e.message));
      // They did reach the node: user:password as Basic auth, the key in the query.
      assert.equal(server.calls[0].authorization, `Basic ${btoa("alice:s3cr3t-pw")}`);
      assert.match(server.calls[0].url, /\?apikey=TOPSECRETKEY42&x=1$/);
      // A node that is gone: fetch's own error quotes the URL it called.
      await server.stop();
      await openRpc(url, "testnet", FAST).catch((e) => messages.push(e.message));
      assert.equal(messages.length, 3);
      assert.match(
        messages[2],
        new RegExp(`^RPC ${server.endpoint}: getNetwork: .*refused.*${GAVE_UP(3)}`),
      );
      messages.forEach(clean);
    }),
});
