/**
 * The embedded catalog's lock file, `<state-dir>/catalog.lock`: its flock elects the owner
 * (embedded.ts), and its one-line record tells the other processes who owns the catalog and where
 * it serves.
 */

export interface LockRecord {
  pid: number;
  /** host:port of the owner's server; absent while it starts or migrates, and once it stops. */
  address?: string;
  /** The owner keeps the catalog for long (EmbeddedOptions.holdsLong). */
  long?: boolean;
}

/**
 * The record is one JSON line. It cannot be replaced by rename (the flock is on the file's inode,
 * which a rename would swap), so it is written in place: truncate, then one write of the whole
 * line. A reader sees the old line, nothing, or a prefix of the new one, and only accepts a
 * complete newline-terminated record: a prefix of a JSON object never parses.
 */
export async function writeLockRecord(file: Deno.FsFile, record: LockRecord): Promise<void> {
  const bytes = new TextEncoder().encode(`${JSON.stringify(record)}\n`);
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
}

/** The lock file's record, or undefined when there is none (yet) or it is incomplete. */
export async function readLockRecord(path: string): Promise<LockRecord | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
  const end = text.indexOf("\n");
  if (end < 0) return undefined;
  const line = text.slice(0, end).trim();
  // A bronze from before shared catalogs wrote its bare pid.
  if (/^\d+$/.test(line)) return { pid: Number(line) };
  try {
    const r = JSON.parse(line);
    if (!Number.isSafeInteger(r?.pid) || r.pid <= 0) return undefined;
    if (r.address !== undefined && !/^127\.0\.0\.1:\d{1,5}$/.test(r.address)) return undefined;
    return { pid: r.pid, address: r.address, ...(r.long === true ? { long: true } : {}) };
  } catch {
    return undefined;
  }
}

/** Something accepts connections at host:port (the owner's server is up). */
export async function reachable(address: string): Promise<boolean> {
  const [hostname, port] = address.split(":");
  try {
    (await Deno.connect({ hostname, port: Number(port) })).close();
    return true;
  } catch {
    return false;
  }
}
