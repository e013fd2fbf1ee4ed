import { rename, rm, writeFile } from "node:fs/promises";
import { openReadyCatalog } from "../../metadata/migrate.ts";
import { catalogStatus } from "../../metadata/status.ts";
import { BronzeError, environmentError } from "../../runtime/errors.ts";
import { statusDoc } from "../../status/doc.ts";
import { statusPage } from "../../status/page.ts";
import { formatStatus } from "../../status/text.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

export type StatusOptions = SettingsOf<"status">;

export const STATUS: CliCommand<"status"> = {
  name: "status",
  summary: "the picture: coverage strips, fleets, followers, dead copiers",
  description:
    "per dataset: the coverage strip (committed, partials, claimed, gaps, superseded), the copiers with their pace and ETA, the followers with their lag, and the copiers that died; --html FILE writes the status page",
  run: statusCommand,
};

/**
 * `bronze status`: the summary the status page shows (/ on a copier's --metrics-addr), read from
 * any catalog, a read-only standby too, by one query: text for people, the page's own JSON with
 * --json, and with --html FILE the page itself, self-contained and without script.
 */
export async function statusCommand(
  opts: StatusOptions,
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    mustExist: true,
    stateDir: opts.stateDir,
    log: (m) => err(`[catalog] ${m}`),
  });
  let doc;
  try {
    doc = statusDoc({
      catalogLabel: catalog.label,
      status: await catalogStatus(catalog),
      refreshSeconds: null,
    });
  } finally {
    await catalog.close();
  }
  if (opts.html !== undefined) await writePage(opts.html, statusPage(doc, "static"));
  if (opts.json) out(JSON.stringify(doc));
  else for (const line of formatStatus(doc)) out(line);
  return 0;
}

/** Whole or not at all: a reader (a web server, a cron job's mail) never sees half a page. */
async function writePage(path: string, html: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await writeFile(tmp, html);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw environmentError(e, { path, writing: true }) ??
      new BronzeError(`cannot write the status page to ${path}: ${(e as Error).message}`);
  }
}
