/**
 * A "remote host" for tests: a Linux network namespace joined to this machine by a veth pair, from
 * which a process reaches local servers (PostgreSQL on 127.0.0.1:5432 by default) over real TCP,
 * and whose cable a test can pull.
 *
 *   namespace bronze-XXXX                 this machine
 *   10.213.a.b+2 ── veth ── 10.213.a.b+1 (bronze-XXXXh)
 *                             │ nft prerouting: dnat <b+1>:5432 → 127.0.0.1:5432
 *                             │ nft input:      snat → 127.0.0.1:61000-65535
 *                             ▼
 *                           PostgreSQL on 127.0.0.1:5432 (sees a client at 127.0.0.1)
 *
 * The TCP connection is the process's own, end to end: no relay holds a socket for it, so when the
 * link is cut PostgreSQL's side of the session sees nothing more from its peer, exactly as when a
 * VM loses power, and only TCP keepalive (or a write timing out) tells it the peer is gone. (A
 * userland relay on this machine would hold the server's socket open and prove nothing.)
 *
 * Why the source NAT: the shared server's pg_hba.conf trusts `host all all 127.0.0.1/32` only, and
 * it must not be reconfigured; after the source NAT it sees the client at 127.0.0.1. The NAT ports
 * lie above the kernel's ephemeral range (32768-60999), so a NAT mapping can never take the
 * 4-tuple of a genuine local client of 127.0.0.1:5432.
 *
 * Requires Linux, root, `ip` (iproute2) and `nft` (nftables; `apt-get install -y nftables`).
 * Everything made is named from one slot number: namespace `bronze-XXXX`, host veth
 * `bronze-XXXXh` (its peer `bronze-XXXXn` lives in the namespace), nftables tables
 * `ip bronze_XXXX` (the NAT) and, only while cut, `netdev bronze_XXXX` here and in the namespace
 * (which goes with the namespace), and an owner file
 * /run/bronze-netns/bronze-XXXX naming the process that made them. Each remoteHost() first sweeps
 * away whatever a dead process left behind, so an interrupted run is cleaned up by the next;
 * `deno run -A tests/support/netns.ts --sweep` does the same by hand.
 */

const OWNER_DIR = "/run/bronze-netns";
const SLOTS = 16384; // /30 subnets in 10.213.0.0/16
const NAT_PORTS = "61000-65535";
const NAME = /^bronze-([0-9a-f]{4})$/;

export interface RemoteHost {
  /** The namespace's name, bronze-XXXX. */
  readonly name: string;
  /** This machine's end of the link: what the namespace connects to. */
  readonly hostAddress: string;
  /** The namespace's own address. */
  readonly address: string;
  /** postgres://postgres@<hostAddress>:5432/<database>: the local PostgreSQL, seen from inside. */
  pgUrl(database: string, user?: string): string;
  /** Runs a command inside the namespace (`ip netns exec`); killed by dispose if still running. */
  spawn(cmd: string, args?: string[], opts?: Omit<Deno.CommandOptions, "args">): Deno.ChildProcess;
  /**
   * Pulls the cable. "drop" (default): every IP packet either way is silently lost on arrival,
   * as when the far host lost power behind a router: each side's sends succeed and vanish, no RST,
   * no ICMP, nothing for either TCP until its own timers fire (ARP still answers, so neither kernel
   * reports a local "host unreachable"). "link-down": both ends are set down, so each side's
   * route to the other goes: the failure of the machine's own NIC, which surfaces at once as
   * local errors ("Network is unreachable") rather than as silence.
   */
  cut(mode?: "drop" | "link-down"): Promise<void>;
  /** Puts the cable back. */
  restore(): Promise<void>;
  /** Kills what runs inside, removes the namespace, link and rules. Idempotent. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** What this machine lacks for remoteHost(), in words; undefined when nothing. */
export async function netnsMissing(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "network namespaces need Linux";
  if (Deno.uid() !== 0) return "network namespaces need root";
  const missing: string[] = [];
  if ((await run("ip", ["-V"]).catch(() => undefined))?.code !== 0) {
    missing.push("`ip` (apt-get install -y iproute2)");
  }
  const nft = await run("nft", ["list", "tables"]).catch(() => undefined);
  if (!nft) missing.push("`nft` (apt-get install -y nftables)");
  else if (nft.code !== 0) {
    missing.push(`a working \`nft\` (nft list tables: ${nft.stderr.trim()})`);
  }
  return missing.length ? `the netns test harness needs ${missing.join(" and ")}` : undefined;
}

/**
 * A new remote host. Dispose it (`await using host = await remoteHost()`, or
 * `[Symbol.asyncDispose]()` in a finally) whatever happens.
 * `ports`: the TCP ports of 127.0.0.1 it can reach, each at the same port of hostAddress.
 */
export async function remoteHost(opts: { ports?: number[] } = {}): Promise<RemoteHost> {
  const missing = await netnsMissing();
  if (missing) throw new Error(missing);
  await sweepNetns();
  const ports = opts.ports ?? [5432];
  const slot = await claimSlot();
  const name = slotName(slot);
  const [hostAddress, address] = slotAddresses(slot);
  const veth = `${name}h`;
  const children = new Set<Deno.ChildProcess>();
  let disposed = false;

  const host: RemoteHost = {
    name,
    hostAddress,
    address,
    pgUrl: (database, user = "postgres") => `postgres://${user}@${hostAddress}:5432/${database}`,
    spawn(cmd, args = [], opts = {}) {
      if (disposed) throw new Error(`${name} is disposed`);
      const child = new Deno.Command("ip", { ...opts, args: ["netns", "exec", name, cmd, ...args] })
        .spawn();
      children.add(child);
      child.status.finally(() => children.delete(child));
      return child;
    },
    async cut(mode = "drop") {
      if (mode === "link-down") {
        await must("ip", ["-n", name, "link", "set", `${name}n`, "down"]);
        await must("ip", ["link", "set", veth, "down"]);
        return;
      }
      // Each direction is dropped where it *arrives*: on this machine's end for what the
      // namespace sends, on the namespace's end for what this machine sends. Never on the way
      // out: a packet dropped on a sender's own egress path is a local transmit failure to its
      // TCP, which then retries every 500 ms as "local congestion" without counting probes,
      // so keepalive would never declare the peer dead. Dropped on arrival, every send succeeds
      // and the packet vanishes, as on a wire to a dead machine.
      await must("nft", ["-f", "-"], dropOnArrival(tableName(slot), veth));
      await must(
        "ip",
        ["netns", "exec", name, "nft", "-f", "-"],
        dropOnArrival(tableName(slot), `${name}n`),
      );
    },
    async restore() {
      if ((await nftTables()).has(`netdev ${tableName(slot)}`)) {
        await must("nft", ["delete", "table", "netdev", tableName(slot)]);
      }
      if ((await nftTables(name)).has(`netdev ${tableName(slot)}`)) {
        await must("ip", [
          "netns",
          "exec",
          name,
          "nft",
          "delete",
          "table",
          "netdev",
          tableName(slot),
        ]);
      }
      await must("ip", ["link", "set", veth, "up"]);
      await must("ip", ["-n", name, "link", "set", `${name}n`, "up"]);
      // Neighbour entries that failed while the link was down would answer "no route to host"
      // for a while; a real cable coming back has no such memory on the far side's router.
      await run("ip", ["neigh", "flush", "dev", veth]);
      await run("ip", ["-n", name, "neigh", "flush", "dev", `${name}n`]);
      await waitLinkUp(name, veth);
    },
    async [Symbol.asyncDispose]() {
      if (disposed) return;
      disposed = true;
      for (const child of children) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      await Promise.allSettled([...children].map((c) => c.status));
      await teardown(slot);
    },
  };

  try {
    await must("ip", ["netns", "add", name]);
    await must("ip", [
      "link",
      "add",
      veth,
      "type",
      "veth",
      "peer",
      "name",
      `${name}n`,
      "netns",
      name,
    ]);
    await must("ip", ["addr", "add", `${hostAddress}/30`, "dev", veth]);
    // Lets packets that arrive on the veth be routed to 127.0.0.1 after the DNAT, and replies from
    // 127.0.0.1 leave through it; without it the kernel drops both as martians.
    await Deno.writeTextFile(`/proc/sys/net/ipv4/conf/${veth}/route_localnet`, "1");
    await must("ip", ["link", "set", veth, "up"]);
    await must("ip", ["-n", name, "link", "set", "lo", "up"]);
    await must("ip", ["-n", name, "addr", "add", `${address}/30`, "dev", `${name}n`]);
    await must("ip", ["-n", name, "link", "set", `${name}n`, "up"]);
    await waitLinkUp(name, veth);
    // No default route: from inside, only hostAddress (on-link) is reachable.
    const set = `{ ${ports.join(", ")} }`;
    await must(
      "nft",
      ["-f", "-"],
      `
      table ip ${tableName(slot)} {
        chain prerouting {
          type nat hook prerouting priority dstnat; policy accept;
          iifname "${veth}" ip daddr ${hostAddress} tcp dport ${set} dnat to 127.0.0.1
        }
        chain input {
          type nat hook input priority 100; policy accept;
          iifname "${veth}" ip daddr 127.0.0.1 tcp dport ${set} snat to 127.0.0.1:${NAT_PORTS}
        }
      }`,
    );
  } catch (err) {
    await host[Symbol.asyncDispose]();
    throw err;
  }
  return host;
}

/**
 * Removes every namespace, veth, nftables table and owner file of the bronze-XXXX family whose
 * owner process is gone (or that has no owner file at all, which only a crash mid-teardown
 * leaves). Returns the names it removed.
 */
export async function sweepNetns(): Promise<string[]> {
  const slots = new Set<number>();
  for await (const e of readDirOrEmpty(OWNER_DIR)) {
    const m = NAME.exec(e.name);
    if (m) slots.add(parseInt(m[1], 16));
  }
  const namespaces = await run("ip", ["netns", "list"]);
  for (const line of namespaces.stdout.split("\n")) {
    const m = NAME.exec(line.split(" ")[0]);
    if (m) slots.add(parseInt(m[1], 16));
  }
  const links = await run("ip", ["-o", "link", "show"]);
  for (const m of links.stdout.matchAll(/^\d+: bronze-([0-9a-f]{4})h[@:]/gm)) {
    slots.add(parseInt(m[1], 16));
  }
  for (const t of await nftTables()) {
    const m = /^\S+ bronze_([0-9a-f]{4})$/.exec(t);
    if (m) slots.add(parseInt(m[1], 16));
  }
  const swept: string[] = [];
  for (const slot of slots) {
    if (await ownerAlive(slot)) continue;
    await teardown(slot);
    swept.push(slotName(slot));
  }
  return swept;
}

// --- internals -----------------------------------------------------------------------------------

const slotName = (slot: number) => `bronze-${slot.toString(16).padStart(4, "0")}`;
const tableName = (slot: number) => `bronze_${slot.toString(16).padStart(4, "0")}`;
const ownerFile = (slot: number) => `${OWNER_DIR}/${slotName(slot)}`;

function slotAddresses(slot: number): [host: string, namespace: string] {
  const base = `10.213.${slot >> 6}.`;
  const low = (slot & 63) << 2;
  return [base + (low + 1), base + (low + 2)];
}

/** This process, as its owner file names it: the pid, and its start time against pid reuse. */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after "(comm) ": state is field 3, starttime field 22.
    const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    return `${pid} ${start}`;
  } catch {
    return undefined;
  }
}

async function ownerAlive(slot: number): Promise<boolean> {
  let owner: string;
  try {
    owner = (await Deno.readTextFile(ownerFile(slot))).trim();
  } catch {
    return false;
  }
  const pid = Number(owner.split(" ")[0]);
  return processIdentity(pid) === owner;
}

/** Takes a free slot by creating its owner file: creation is atomic, so parallel runs never share. */
async function claimSlot(): Promise<number> {
  await Deno.mkdir(OWNER_DIR, { recursive: true });
  const me = processIdentity(Deno.pid)!;
  for (let attempt = 0; attempt < 100; attempt++) {
    const slot = Math.floor(Math.random() * SLOTS);
    try {
      await Deno.writeTextFile(ownerFile(slot), me + "\n", { createNew: true });
      return slot;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
  }
  throw new Error(`no free slot in ${OWNER_DIR} after 100 tries`);
}

/** Removes everything of a slot, best effort and idempotent; the owner file goes last. */
async function teardown(slot: number): Promise<void> {
  const name = slotName(slot);
  const pids = await run("ip", ["netns", "pids", name]);
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      Deno.kill(Number(pid), "SIGKILL");
    } catch { /* gone */ }
  }
  const tables = await nftTables();
  for (const family of ["ip", "netdev"]) {
    if (tables.has(`${family} ${tableName(slot)}`)) {
      await run("nft", ["delete", "table", family, tableName(slot)]);
    }
  }
  await run("ip", ["link", "del", `${name}h`]);
  await run("ip", ["netns", "del", name]);
  await Deno.remove(ownerFile(slot)).catch(() => {});
}

/** Until both ends of the link say LOWER_UP (carrier), which follows `link set up` shortly. */
async function waitLinkUp(name: string, veth: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const [outside, inside] = await Promise.all([
      run("ip", ["-o", "link", "show", veth]),
      run("ip", ["-n", name, "-o", "link", "show", `${name}n`]),
    ]);
    if (/[<,]LOWER_UP[,>]/.test(outside.stdout) && /[<,]LOWER_UP[,>]/.test(inside.stdout)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the link of ${name} did not come up within 5 s`);
}

/** The nftables ruleset that drops all but ARP arriving on device. */
function dropOnArrival(table: string, device: string): string {
  return `
    table netdev ${table} {
      chain ingress {
        type filter hook ingress device "${device}" priority -500; policy accept;
        meta protocol != arp drop
      }
    }`;
}

/** "family name" of each nftables table, of this machine or of a namespace. */
async function nftTables(namespace?: string): Promise<Set<string>> {
  const out = namespace
    ? await run("ip", ["netns", "exec", namespace, "nft", "list", "tables"])
    : await run("nft", ["list", "tables"]);
  return new Set(
    out.stdout.split("\n").map((l) => l.replace(/^table /, "").trim()).filter(Boolean),
  );
}

async function* readDirOrEmpty(dir: string) {
  try {
    yield* Deno.readDir(dir);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[], stdin?: string): Promise<Ran> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function must(cmd: string, args: string[], stdin?: string): Promise<Ran> {
  const r = await run(cmd, args, stdin);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  }
  return r;
}

if (import.meta.main) {
  if (Deno.args[0] !== "--sweep") {
    console.error("usage: deno run -A tests/support/netns.ts --sweep");
    Deno.exit(2);
  }
  const swept = await sweepNetns();
  console.log(swept.length ? `removed ${swept.join(", ")}` : "nothing to remove");
}
