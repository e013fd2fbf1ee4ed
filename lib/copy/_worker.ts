/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * A build worker: builds partition files (lib/build.ts) off the main thread, one at a time, and
 * reports progress, its result or its error by message. The interrupt is a shared flag the main
 * thread sets; the build stops after the ledger in hand and finishes the partial file.
 */
import "../runtime/quiet.ts"; // first, as in main.ts: no deprecation warnings from dependencies
import { type LedgerSource, openSource } from "../source/mod.ts";
import { buildPartitionFile } from "./build.ts";
import { type BuildRequest, toWire, type WorkerReply } from "./_protocol.ts";

let source: { key: string; source: Promise<LedgerSource> } | undefined;
const PROGRESS_EVERY_MS = 100;

function post(msg: WorkerReply): void {
  self.postMessage(msg);
}

self.onmessage = async (e: MessageEvent<BuildRequest>) => {
  const req = e.data;
  const stop = new Int32Array(req.stop);
  let ledgers = 0;
  let bytes = 0;
  let last = performance.now();
  const flush = () => {
    if (ledgers) post({ type: "progress", ledgers, bytes });
    ledgers = bytes = 0;
  };
  try {
    const key = `${req.network} ${JSON.stringify(req.source)}`;
    if (source?.key !== key) {
      source = { key, source: openSource(req.source, req.network) };
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
    post({ type: "failed", id: req.id, error: toWire(err) });
  }
};
