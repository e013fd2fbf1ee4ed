/**
 * Build workers: partitions are built (lake read, decode, Parquet, sha256) in workers, so a copy
 * uses every core while the main thread commits finished partitions strictly in ledger order.
 * Each worker builds one partition at a time; requests beyond the free workers wait in a queue.
 *
 * They are node:worker_threads workers, not Web Workers, for one reason: their V8 heaps can be
 * sized (resourceLimits), where a Web Worker's take V8's defaults. See YOUNG_GENERATION_MB.
 */
import { Worker } from "node:worker_threads";
import type { Built } from "./build.ts";
import type { Network } from "../source/network.ts";
import type { SourceUrl } from "../source/url.ts";
import type { PartitionMeta } from "../table/schema.ts";
import type { Range } from "../table/grid.ts";
import type { Retrier } from "../runtime/retry.ts";
import { type BuildRequest, fromWire, type RetryReport, type WorkerReply } from "./_protocol.ts";

interface Task {
  req: BuildRequest;
  resolve(b: Built | null): void;
  reject(e: unknown): void;
}

interface Slot {
  worker: Worker;
  task?: Task;
  /** Prefix of this worker's retry operations, and those still retrying (settled if it dies). */
  name: string;
  retrying: Map<string, Parameters<Retrier["events"]["onSettled"]>[0]["area"]>;
}

const WORKER_URL = new URL("./_worker.ts", import.meta.url);

/**
 * Each worker's young generation (where V8 allocates first; 48 MB by default, three 16 MB
 * semi-spaces). A build allocates short-lived objects at a high rate (rows, pages, strings), and
 * V8 lets the young generation grow to its maximum under that rate: 2 x 48 MB resident for
 * garbage. Measured on 30,000 ledgers of 2 KB, embedded catalog, c=2: peak RSS 490-507 MB with
 * the default, 391-426 MB with 4-12 MB, at the same CPU (a scavenge of a small young generation is
 * cheap: little survives). Larger objects (ledgers, pages of 1 MB) go to the large-object space,
 * which this does not bound. The old generation is left to V8 (a row group of 1 MB ledgers holds
 * tens of MB alive; a hard cap would kill the worker).
 */
const YOUNG_GENERATION_MB = 12;

export class BuildPool {
  readonly #size: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Task[] = [];
  readonly #stop = new SharedArrayBuffer(4);
  #nextId = 0;
  #workers = 0;
  #closed = false;

  constructor(
    size: number,
    private readonly source: SourceUrl,
    private readonly network: Network,
    private readonly onProgress: (ledgers: number, bytes: number) => void,
    /** The run's retry policy (sent to the workers) and listener (told of their retries). */
    private readonly retry: Retrier,
  ) {
    this.#size = Math.max(1, size);
  }

  /**
   * Starts every worker now, so that loading their modules (the XDR schemas above all) overlaps
   * the main thread's catalog and planning work instead of delaying the first build.
   */
  warm(): void {
    while (!this.#closed && this.#slots.length < this.#size) this.#spawn();
  }

  /** Builds `range` into `path` on a free worker; null if stopped before its first ledger. */
  build(range: Range, path: string, meta: PartitionMeta): Promise<Built | null> {
    if (this.stopped) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const req: BuildRequest = {
        id: this.#nextId++,
        source: this.source,
        network: this.network,
        range,
        path,
        meta,
        stop: this.#stop,
        retry: { ...this.retry.policy },
      };
      this.#queue.push({ req, resolve, reject });
      this.#dispatch();
    });
  }

  get stopped(): boolean {
    return Atomics.load(new Int32Array(this.#stop), 0) !== 0;
  }

  /** Clears a stop: a follower builds again after a batch that an error or signal ended. */
  resume(): void {
    if (this.#closed) return;
    Atomics.store(new Int32Array(this.#stop), 0, 0);
  }

  /** The interrupt: running builds stop after the ledger in hand; queued ones resolve null. */
  stop(): void {
    Atomics.store(new Int32Array(this.#stop), 0, 1);
    for (const t of this.#queue.splice(0)) t.resolve(null);
  }

  /** Stops and terminates every worker; builds still running are rejected. */
  close(): void {
    this.stop();
    this.#closed = true;
    for (const slot of this.#slots.splice(0)) {
      this.#settleAll(slot);
      slot.worker.terminate();
      slot.task?.reject(new Error("build pool closed"));
    }
  }

  #dispatch(): void {
    while (this.#queue.length && !this.#closed) {
      let slot = this.#slots.find((s) => !s.task);
      if (!slot) {
        if (this.#slots.length >= this.#size) return;
        slot = this.#spawn();
      }
      const task = this.#queue.shift()!;
      if (this.stopped) {
        task.resolve(null);
        continue;
      }
      slot.task = task;
      slot.worker.postMessage(task.req);
    }
  }

  #spawn(): Slot {
    const worker = new Worker(WORKER_URL, {
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    const slot: Slot = { worker, name: `w${++this.#workers}`, retrying: new Map() };
    worker.on("message", (msg: WorkerReply) => {
      if (msg.type === "progress") {
        this.onProgress(msg.ledgers, msg.bytes);
        return;
      }
      if (msg.type === "retry") {
        this.#retried(slot, msg.report);
        return;
      }
      const task = slot.task;
      if (!task || task.req.id !== msg.id) return;
      slot.task = undefined;
      if (msg.type === "done") task.resolve(msg.built);
      else task.reject(fromWire(msg.error));
      this.#dispatch();
    });
    worker.on("error", (e: Error) => {
      // An uncaught error ends the worker: fail its task, replace it on demand.
      const i = this.#slots.indexOf(slot);
      if (i >= 0) this.#slots.splice(i, 1);
      this.#settleAll(slot);
      worker.terminate();
      slot.task?.reject(new Error(`build worker failed: ${e.message}`));
      slot.task = undefined;
      this.#dispatch();
    });
    this.#slots.push(slot);
    return slot;
  }

  /** A worker's retry, told to the run's listener under a name no other worker's op has. */
  #retried(slot: Slot, report: RetryReport): void {
    const op = `${slot.name}:${report.event.op}`;
    if (report.kind === "retry") {
      slot.retrying.set(op, report.event.area);
      this.retry.events.onRetry({ ...report.event, op });
    } else {
      slot.retrying.delete(op);
      this.retry.events.onSettled({ ...report.event, op });
    }
  }

  /** A worker gone: its operations still retrying are over. */
  #settleAll(slot: Slot): void {
    for (const [op, area] of slot.retrying) {
      this.retry.events.onSettled({ op, area, outcome: "failed" });
    }
    slot.retrying.clear();
  }
}
