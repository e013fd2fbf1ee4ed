/**
 * The seed's checkpoint: where a copier last committed. It is a hint that makes resume cheap and
 * visible, never the truth (the catalog is): a checkpoint is saved only after the catalog commit,
 * so it can lag the catalog but never lead it.
 *
 * One backend for all locations: an ObjectStore (local path, gs://, s3://) holding one JSON object,
 * written with a precondition on the version last seen, so two writers cannot silently clobber
 * each other.
 */
import { BronzeError } from "../runtime/errors.ts";
import type { Retrier } from "../runtime/retry.ts";
import {
  type ObjectStore,
  type ObjectUrl,
  objectUrl,
  openStore,
  parseObjectUrl,
  PreconditionFailedError,
} from "../blob/mod.ts";

export interface PartitionInfo {
  start: number;
  end: number;
  checksum: string;
}

/** Field names exactly as in the seed. */
export interface Checkpoint {
  copier_id: string;
  network: string;
  era_id: string;
  version_label: string;
  last_committed_ledger: number;
  last_committed_partition?: PartitionInfo;
  updated_at: string;
}

/** No checkpoint exists yet: a fresh start. Distinct from an unreadable one, which is an error. */
export class ErrNoCheckpoint extends Error {
  constructor(readonly location: string) {
    super(`no checkpoint at ${location}`);
    this.name = "ErrNoCheckpoint";
  }
}

export class CheckpointError extends BronzeError {}

export interface Manager {
  /** Printable location. */
  readonly location: string;
  /** Throws ErrNoCheckpoint when there is none, CheckpointError when it is unreadable. */
  load(): Promise<Checkpoint>;
  save(cp: Checkpoint): Promise<void>;
}

/**
 * A manager for the checkpoint object a local path, file://, gs:// or s3:// URL names (parsed by
 * the settings, or here); `retry`: the run's retry policy and listener.
 */
export function checkpointManager(location: string | ObjectUrl, retry?: Retrier): Manager {
  const parsed = typeof location === "string" ? parseObjectUrl(location) : location;
  if ("problem" in parsed) throw new CheckpointError(`checkpoint location ${parsed.problem}`, 2);
  return new ObjectCheckpoint(openStore(parsed.root, { area: "checkpoint", retry }), parsed.name);
}

class ObjectCheckpoint implements Manager {
  readonly location: string;
  // Version of the object as this process last saw it: a save succeeds only if nobody else wrote
  // in between. undefined = not looked yet.
  #version: string | null | undefined;

  constructor(private readonly store: ObjectStore, private readonly key: string) {
    this.location = objectUrl(store, key);
  }

  async load(): Promise<Checkpoint> {
    const obj = await this.store.getVersioned(this.key);
    if (obj === null) {
      this.#version = null;
      throw new ErrNoCheckpoint(this.location);
    }
    this.#version = obj.version;
    return parseCheckpoint(obj.data, this.location);
  }

  async save(cp: Checkpoint): Promise<void> {
    if (this.#version === undefined) {
      this.#version = (await this.store.head(this.key))?.version ?? null;
    }
    const bytes = new TextEncoder().encode(JSON.stringify(cp, null, 2) + "\n");
    try {
      this.#version = await this.store.putIfVersion(this.key, bytes, this.#version);
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        this.#version = undefined;
        throw new CheckpointError(
          `checkpoint ${this.location} was written by another process since this copier read it; ` +
            `is another copier using the same --checkpoint?`,
        );
      }
      throw err;
    }
  }
}

function parseCheckpoint(bytes: Uint8Array, location: string): Checkpoint {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new CheckpointError(
      `checkpoint ${location} is corrupt: not valid JSON (${(err as Error).message})`,
    );
  }
  const problems: string[] = [];
  const o = (typeof raw === "object" && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<
    string,
    unknown
  >;
  if (o !== raw) problems.push("not a JSON object");
  for (const f of ["copier_id", "network", "era_id", "version_label", "updated_at"]) {
    if (typeof o[f] !== "string" || o[f] === "") problems.push(`${f} must be a non-empty string`);
  }
  const isLedger = (v: unknown) =>
    typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
  if (!isLedger(o.last_committed_ledger)) {
    problems.push("last_committed_ledger must be a ledger number");
  }
  const p = o.last_committed_partition as Record<string, unknown> | undefined;
  if (
    p !== undefined &&
    (typeof p !== "object" || p === null || !isLedger(p.start) || !isLedger(p.end) ||
      typeof p.checksum !== "string")
  ) {
    problems.push("last_committed_partition must be {start, end, checksum}");
  }
  const known = new Set([
    "copier_id",
    "network",
    "era_id",
    "version_label",
    "last_committed_ledger",
    "last_committed_partition",
    "updated_at",
  ]);
  for (const k of Object.keys(o)) if (!known.has(k)) problems.push(`unknown field ${k}`);
  if (problems.length) {
    throw new CheckpointError(`checkpoint ${location} is corrupt: ${problems.join("; ")}`);
  }
  return o as unknown as Checkpoint;
}

/** The fields that tie a checkpoint to one copier of one dataset. */
export interface Identity {
  copier_id: string;
  network: string;
  era_id: string;
  version_label: string;
}

/** Refuses a checkpoint that belongs to another copier or dataset, showing both sides. */
export function checkIdentity(cp: Checkpoint, run: Identity, location: string): void {
  const diffs = (Object.keys(run) as (keyof Identity)[])
    .filter((k) => cp[k] !== run[k])
    .map((k) => `${k} ${JSON.stringify(cp[k])} (this run: ${JSON.stringify(run[k])})`);
  if (diffs.length) {
    throw new CheckpointError(
      `checkpoint ${location} belongs to another copier or dataset: ${diffs.join(", ")}; ` +
        `use its settings, or another --checkpoint`,
    );
  }
}
