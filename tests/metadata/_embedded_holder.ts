/**
 * A bronze process holding the embedded catalog of a state dir, driven by embedded_test.ts:
 *
 *   deno run -A tests/metadata/_embedded_holder.ts <state-dir> [--long]
 *
 * Opens the catalog as every command does (openReadyCatalog; with --long as a copy does, holding
 * it for long), prints `ready <role> <owner pid>`,
 * then obeys one command per stdin line, answering one line each:
 *
 *   sql <statement>      runs it: `ok <rows as JSON>` or `error <message>`
 *   load <who> <n>       runs transactionLoad(who, n): `loaded`, or `error <message>`
 *   begin                opens a transaction on a connection of its own and leaves it open: `began`
 *   commit               commits it: `committed`
 *   close                closes the catalog (stopping the server when it owns it), prints
 *                        `closed` and exits 0
 */
import { type Catalog } from "../../lib/metadata/catalog.ts";
import { openReadyCatalog } from "../../lib/metadata/migrate.ts";
import { dbOf } from "../../lib/metadata/_db.ts";

export const LOAD_TABLE = "embedded_test_tx";

const ROLLBACK = "planned rollback";

/**
 * n transactions on LOAD_TABLE, four at a time on four connections. Each inserts two rows (steps
 * 1 and 2) stamped with its transaction id, reading it back in between; every third one then
 * rolls back. Transactions that interleaved on the one backend would mix their ids, or lose rows
 * to another's ROLLBACK, or keep rows of a rolled-back one.
 */
export async function transactionLoad(catalog: Catalog, who: string, n: number): Promise<void> {
  const db = dbOf(catalog);
  await db.query(
    `CREATE TABLE IF NOT EXISTS ${LOAD_TABLE} (who text, i int, step int, txid bigint)`,
  );
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      await db.transaction(async (tx) => {
        const [{ id }] = await tx.query<{ id: number }>(
          `INSERT INTO ${LOAD_TABLE} VALUES ($1, $2, 1, txid_current()) RETURNING txid AS id`,
          [who, i],
        );
        const [{ now }] = await tx.query<{ now: number }>("SELECT txid_current() AS now");
        if (now !== id) throw new Error(`transaction ${who}/${i} changed id: ${id} then ${now}`);
        await tx.query(`INSERT INTO ${LOAD_TABLE} VALUES ($1, $2, 2, txid_current())`, [who, i]);
        if (i % 3 === 2) throw new Error(ROLLBACK);
      }).catch((err) => {
        if (!(err as Error).message.endsWith(ROLLBACK)) throw err; // as Db.transaction words it
      });
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

async function main() {
  const catalog = await openReadyCatalog({
    stateDir: Deno.args[0],
    log: (line) => console.error(`[catalog] ${line}`),
    holdsLong: Deno.args.includes("--long"),
  });
  console.log(`ready ${catalog.embeddedRole} ${catalog.embeddedOwnerPid}`);
  let open: Awaited<ReturnType<ReturnType<typeof dbOf>["connect"]>> | undefined;
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const [command, ...rest] = pending.slice(0, nl).split(" ");
      pending = pending.slice(nl + 1);
      try {
        if (command === "sql") {
          console.log(`ok ${JSON.stringify(await dbOf(catalog).query(rest.join(" ")))}`);
        } else if (command === "load") {
          await transactionLoad(catalog, rest[0], Number(rest[1]));
          console.log("loaded");
        } else if (command === "begin") {
          open = await dbOf(catalog).connect();
          await open.query("BEGIN");
          console.log("began");
        } else if (command === "commit") {
          await open!.query("COMMIT");
          open!.release();
          open = undefined;
          console.log("committed");
        } else if (command === "close") {
          open?.release(true);
          await catalog.close();
          console.log("closed");
          Deno.exit(0);
        }
      } catch (err) {
        console.log(`error ${(err as Error).message}`);
      }
    }
  }
}

if (import.meta.main) await main();
