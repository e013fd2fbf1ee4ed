/**
 * A build worker: builds partition files (lib/build.ts) off the main thread, one at a time, and
 * reports progress, its result or its error by message. The interrupt is a shared flag the main
 * thread sets; the build stops after the ledger in hand and finishes the partial file. A
 * node:worker_threads worker, so that the pool can size its heap (pool.ts).
 */
import "../runtime/quiet.ts"; // first, as in main.ts: no deprecation warnings from dependencies
import { parentPort } from "node:worker_threads";
import { type LedgerSource, openSource } from "../source/mod.ts";
import { fsError } from "../runtime/errors.ts";
import { Retrier } from "../runtime/retry.ts";
import { buildPartitionFile } from "./build.ts";
import { type BuildRequest, toWire, type WorkerReply } from "./_protocol.ts";

let source: { key: string; source: Promise<LedgerSource> } | undefined;
/** Retries are the main thread's to count and report: each event is posted there. */
let retry: Retrier | undefined;
const PROGRESS_EVERY_MS = 100;

function post(msg: WorkerReply): void {
  parentPort!.postMessage(msg);
}

parentPort!.on("message", async (req: BuildRequest) => {
  const stop = new Int32Array(req.stop);
  let ledgers = 0;
  let bytes = 0;
  let last = performance.now();
  const flush = () => {
    if (ledgers) post({ type: "progress", ledgers, bytes });
    ledgers = bytes = 0;
  };
  try {
    retry ??= new Retrier(req.retry, {
      onRetry: (event) => post({ type: "retry", report: { kind: "retry", event } }),
      onSettled: (event) => post({ type: "retry", report: { kind: "settled", event } }),
    });
    const key = `${req.network} ${JSON.stringify(req.source)}`;
    if (source?.key !== key) {
      source = { key, source: openSource(req.source, req.network, retry) };
    }
    const built = await buildPartitionFile(await source.source, req.range, req.path, req.meta, {
      stopped: () => Atomics.load(stop, 0) !== 0,
      progress(n, b) {
        ledgers += n;
        bytes += b;
        const now = performance.now();
        if (now - last >= PROGRESS_EVERY_MS) {
          last = now;
          flush();
        }
      },
    });
    flush();
    post({ type: "done", id: req.id, built });
  } catch (err) {
    flush();
    // A full disk or a folder not writable under the state dir is the machine's, not a bug.
    post({
      type: "failed",
      id: req.id,
      error: toWire(fsError(err, { path: req.path, writing: true })),
    });
  }
});
