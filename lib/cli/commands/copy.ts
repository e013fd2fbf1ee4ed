import { hostname } from "node:os";
import { copy, type CopyResult } from "../../copy/run.ts";
import { areaOf, EXIT } from "../../runtime/errors.ts";
import { CopierMetrics, serveMetrics } from "../../metrics/mod.ts";
import { createLogger, type Logger } from "../../runtime/log.ts";
import { runRetrier } from "../../runtime/retry.ts";
import { StatusBoard } from "../../status/board.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

export type CopyArgs = SettingsOf<"copy">;

export const COPY: CliCommand<"copy"> = {
  name: "copy",
  summary: "copy a ledger range, resumably; or follow the network",
  description:
    "copy a ledger range from a Galexie lake or a Stellar RPC node into Parquet partitions, resumably; with --follow, keep copying as the network grows",
  run: copyCommand,
};

/** Exit code of an interrupted run, as a shell reports death by that signal. */
const SIGNAL_EXIT: Record<string, number> = { SIGINT: EXIT.sigint, SIGTERM: EXIT.sigterm };

/**
 * `bronze copy`. The first SIGINT/SIGTERM stops reading, commits the partial partition in hand,
 * saves the checkpoint and exits 130/143; a second one exits at once (the commit protocol keeps
 * even that safe).
 */
export async function copyCommand(
  args: CopyArgs,
  log: Logger = createLogger(args.logFormat),
): Promise<number> {
  const controller = new AbortController();
  let received: string | undefined;
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const handler = () => {
      if (received) {
        log.warn("copier", `second ${sig}: aborting now`);
        Deno.exit(SIGNAL_EXIT[sig]);
      }
      received = sig;
      log.info(
        "copier",
        `${sig} received: committing the partition in hand (send again to abort at once)`,
      );
      controller.abort();
    };
    Deno.addSignalListener(sig, handler);
    return [sig, handler] as const;
  });
  const metrics = args.metricsAddr === undefined ? undefined : new CopierMetrics(
    { network: args.network, era: args.era, version: args.versionLabel },
    { stallAfterSeconds: args.stallAfter, headStallAfterSeconds: args.stallAfter },
  );
  // The log, whose warnings (retry bursts among them) the status page lists too.
  const said = metrics ? noting(log, metrics) : log;
  // Every retry of the run is logged once per burst and, with --metrics-addr, counted.
  const retry = runRetrier(args.retryFor, said);
  if (metrics) retry.events.listen(metrics);
  const board = metrics && new StatusBoard({
    refreshSeconds: args.statusRefresh,
    self: () => ({
      copierId: args.copierId,
      host: hostname(),
      pid: Deno.pid,
      role: args.follow ? "follower" : args.fleet ? "fleet" : "range",
      dataset: { network: args.network, era: args.era, version: args.versionLabel },
      live: metrics.live(),
    }),
  });
  const server = metrics && serveMetrics(args.metricsAddr!, metrics, metrics.health, board);
  if (server) {
    log.info(
      "metrics",
      `serving ${server.url}/metrics and ${server.url}/healthz, and the status page at ${server.url}/`,
    );
  }
  let result: CopyResult;
  try {
    result = await copy({ ...args, retry }, said, controller.signal, metrics, board);
  } catch (err) {
    metrics?.error(areaOf(err), (err as Error)?.message ?? String(err));
    throw err;
  } finally {
    for (const [sig, handler] of handlers) Deno.removeSignalListener(sig, handler);
    await server?.close();
  }
  if (result.interrupted) {
    log.info("copier", `stopped on ${received}; run the same command again to resume`);
    return SIGNAL_EXIT[received ?? "SIGINT"];
  }
  return 0;
}

/** The log, whose warnings the status page also lists among the copier's latest problems. */
function noting(log: Logger, metrics: CopierMetrics): Logger {
  return {
    ...log,
    warn(tag, message, fields) {
      metrics.problem(tag, message);
      log.warn(tag, message, fields);
    },
  };
}
