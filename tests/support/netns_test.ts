import assert from "node:assert/strict";
import { createTestDatabase } from "./catalogs.ts";
import { netnsMissing, type RemoteHost, remoteHost, sweepNetns } from "./netns.ts";

/**
 * The harness itself: the remote host reaches PostgreSQL end to end, a cut is silent both ways and
 * heals, a link-down is loud, and nothing of it outlives a test or a dead run.
 */

const ROOT = new URL("../..", import.meta.url).pathname;
const linux = Deno.build.os === "linux";

async function requireHarness() {
  const missing = await netnsMissing();
  if (missing) throw new Error(missing);
}

async function text(stream: ReadableStream<Uint8Array>) {
  return new TextDecoder().decode(await new Response(stream).arrayBuffer());
}

/** Runs a TypeScript snippet with this repo's imports (deno eval), inside the host. */
function evalInside(host: RemoteHost, code: string, stdin: "piped" | "null" = "null") {
  return host.spawn(Deno.execPath(), ["eval", "--cached-only", code], {
    cwd: ROOT,
    stdin,
    stdout: "piped",
    stderr: "piped",
  });
}

/** Tries a TCP connect from inside with bash, for at most `seconds`: "connected" or why not. */
async function tryConnect(host: RemoteHost, seconds: number): Promise<string> {
  const out = await host.spawn("timeout", [
    String(seconds),
    "bash",
    "-c",
    `exec 3<>/dev/tcp/${host.hostAddress}/5432 && echo connected`,
  ], { stdout: "piped", stderr: "piped" }).output();
  const said = new TextDecoder().decode(out.stdout).trim() ||
    new TextDecoder().decode(out.stderr).trim();
  return out.code === 124 ? "timed out" : said;
}

/** What this machine has of a slot's name: namespace, veth, nftables tables, owner file. */
async function traces(name: string): Promise<string[]> {
  const found: string[] = [];
  const run = async (cmd: string, args: string[]) =>
    new TextDecoder().decode(
      (await new Deno.Command(cmd, { args, stdout: "piped" }).output()).stdout,
    );
  if ((await run("ip", ["netns", "list"])).split("\n").some((l) => l.split(" ")[0] === name)) {
    found.push(`namespace ${name}`);
  }
  if ((await run("ip", ["-o", "link", "show"])).includes(` ${name}h`)) found.push(`veth ${name}h`);
  const table = name.replace("-", "_");
  for (const l of (await run("nft", ["list", "tables"])).split("\n")) {
    if (l.endsWith(` ${table}`)) found.push(l);
  }
  try {
    await Deno.stat(`/run/bronze-netns/${name}`);
    found.push(`owner file of ${name}`);
  } catch { /* none */ }
  return found;
}

Deno.test({
  name: "netns: the remote host reaches PostgreSQL over TCP, which sees it at 127.0.0.1",
  ignore: !linux,
}, async () => {
  await requireHarness();
  const db = await createTestDatabase();
  try {
    await using host = await remoteHost();
    const child = evalInside(
      host,
      `import pg from "pg";
       const c = new pg.Client(${JSON.stringify(host.pgUrl(db.name))});
       await c.connect();
       const { rows } = await c.query(
         "SELECT host(client_addr) AS addr, current_database() AS db FROM pg_stat_activity " +
         "WHERE pid = pg_backend_pid()");
       console.log(JSON.stringify(rows[0]));
       await c.end();`,
    );
    const [status, out, err] = await Promise.all([
      child.status,
      text(child.stdout),
      text(child.stderr),
    ]);
    assert.equal(status.code, 0, err);
    assert.deepEqual(JSON.parse(out), { addr: "127.0.0.1", db: db.name });
  } finally {
    await db.drop();
  }
});

Deno.test({
  name: "netns: a cut is silent both ways (nothing fails, nothing arrives) and heals on restore",
  ignore: !linux,
}, async () => {
  await requireHarness();
  await using host = await remoteHost();
  assert.equal(await tryConnect(host, 10), "connected");
  // An established connection across the cut: its query is neither answered nor refused while
  // cut, and completes once restored, on the same connection.
  const child = evalInside(
    host,
    `import pg from "pg";
     const c = new pg.Client(${JSON.stringify(host.pgUrl("postgres"))});
     c.on("error", (e) => console.log("error " + e.message));
     await c.connect();
     console.log("ready");
     for await (const _ of Deno.stdin.readable) break;
     const t = Date.now();
     const { rows } = await c.query("SELECT 42 AS n");
     console.log("answered " + rows[0].n + " after " + (Date.now() - t) + " ms");
     await c.end();`,
    "piped",
  );
  const lines: string[] = [];
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      lines.push(...chunk.split("\n").filter(Boolean));
    }
  })();
  const stderr = text(child.stderr);
  const writer = child.stdin.getWriter();
  try {
    for (let i = 0; !lines.includes("ready"); i++) {
      if (i >= 600) assert.fail(`the client never connected: ${lines} ${await stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await host.cut();
    const cutAt = Date.now();
    // A new connection neither succeeds nor is refused: it is still waiting when given up on.
    assert.equal(await tryConnect(host, 2), "timed out");
    await writer.write(new TextEncoder().encode("go\n"));
    // Observation window, not a timing assertion: a reset or an unreachable would show by now.
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(lines, ["ready"], "nothing arrives while cut");
    await host.restore();
    const restoredAt = Date.now();
    const status = await child.status;
    await reading;
    assert.equal(status.code, 0, await stderr);
    assert.match(lines[1], /^answered 42 after \d+ ms$/);
    console.log(
      `cut for ${Date.now() - cutAt} ms; ${lines[1]} (done ` +
        `${Date.now() - restoredAt} ms after restore)`,
    );
    assert.equal(await tryConnect(host, 10), "connected");
  } finally {
    await writer.close().catch(() => {});
    await host[Symbol.asyncDispose]();
    await child.status;
    await reading;
    await stderr;
  }
});

Deno.test({
  name: "netns: a link-down cut fails at once inside, and restores",
  ignore: !linux,
}, async () => {
  await requireHarness();
  await using host = await remoteHost();
  await host.cut("link-down");
  const started = Date.now();
  const outcome = await tryConnect(host, 10);
  console.log(`link down: connect gave "${outcome}" after ${Date.now() - started} ms`);
  assert.match(outcome, /Network is unreachable/);
  await host.restore();
  assert.equal(await tryConnect(host, 10), "connected");
});

Deno.test({
  name: "netns: dispose leaves nothing behind, and a dead run's leftovers are swept",
  ignore: !linux,
}, async () => {
  await requireHarness();
  const host = await remoteHost();
  let name = host.name;
  try {
    await host.cut();
    const sleeper = host.spawn("sleep", ["600"]);
    assert.ok((await traces(name)).length >= 4, `made: ${await traces(name)}`);
    await host[Symbol.asyncDispose]();
    assert.equal((await sleeper.status).signal, "SIGKILL");
    assert.deepEqual(await traces(name), []);

    // A run that dies holding a cut host: a process of its own, gone without disposing.
    const dead = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { remoteHost } from "./tests/support/netns.ts";
         const h = await remoteHost();
         await h.cut();
         h.spawn("sleep", ["600"], { stdin: "null", stdout: "null", stderr: "null" });
         console.log(h.name);
         Deno.exit(0);`,
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(dead.code, 0, new TextDecoder().decode(dead.stderr));
    name = new TextDecoder().decode(dead.stdout).trim();
    const left = await traces(name);
    assert.ok(left.length >= 4, `a dead run leaves ${left}`);
    assert.ok((await sweepNetns()).includes(name));
    assert.deepEqual(await traces(name), []);
  } finally {
    await host[Symbol.asyncDispose]();
    await sweepNetns();
  }
});
