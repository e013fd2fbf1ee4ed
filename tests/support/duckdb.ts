import { stat } from "node:fs/promises";
import { DuckDBInstance } from "@duckdb/node-api";

/**
 * The real DuckLake reader: DuckDB (@duckdb/node-api, test-only) with the ducklake and postgres
 * extensions built for it in ../shared/tools/duckdb-1.5.6 (loaded by path: the extension server
 * is not reachable from here). Tests that need it skip, saying why, where that folder is absent.
 */
export const DUCKDB_TOOLS = new URL("../../../shared/tools/duckdb-1.5.6/", import.meta.url)
  .pathname;
export const DUCKLAKE_ABSENT: string | false = await stat(
  `${DUCKDB_TOOLS}ducklake.duckdb_extension`,
).then(() => false as const).catch(() =>
  `DuckDB's ducklake extension not found at ${DUCKDB_TOOLS}`
);
if (DUCKLAKE_ABSENT) console.log(`SKIPPED DuckLake reader tests: ${DUCKLAKE_ABSENT}`);

/** libpq's keyword form of a postgres:// DSN, as `ATTACH 'ducklake:postgres:<this>'` takes it. */
export function libpqOf(dsn: string): string {
  const u = new URL(dsn);
  return [
    `dbname=${decodeURIComponent(u.pathname.slice(1))}`,
    `host=${u.hostname}`,
    `port=${u.port || "5432"}`,
    `user=${decodeURIComponent(u.username)}`,
    ...(u.password ? [`password=${decodeURIComponent(u.password)}`] : []),
  ].join(" ");
}

export interface DuckLakeReader {
  /** Rows of a query, as JSON values (BIGINT as strings: use Number()). */
  rows<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  /** The plan EXPLAIN ANALYZE prints for a query. */
  explain(sql: string): Promise<string>;
  run(sql: string): Promise<void>;
  close(): void;
  [Symbol.dispose](): void;
}

/**
 * A DuckDB with the catalog at `dsn` attached as `bronze` (READ_ONLY unless `options` says
 * otherwise), as the README tells a reader to attach it.
 */
export async function attachDuckLake(
  dsn: string,
  options = "READ_ONLY",
): Promise<DuckLakeReader> {
  const instance = await DuckDBInstance.create(":memory:", { allow_unsigned_extensions: "true" });
  const c = await instance.connect();
  const reader: DuckLakeReader = {
    async rows<T>(sql: string) {
      return (await c.runAndReadAll(sql)).getRowObjectsJson() as T[];
    },
    async explain(sql: string) {
      const r = await c.runAndReadAll(`EXPLAIN ANALYZE ${sql}`);
      return String(r.getRowObjects()[0].explain_value);
    },
    async run(sql: string) {
      await c.run(sql);
    },
    close() {
      c.closeSync();
      instance.closeSync();
    },
    [Symbol.dispose]() {
      reader.close();
    },
  };
  try {
    await c.run(`LOAD '${DUCKDB_TOOLS}postgres_scanner.duckdb_extension'`);
    await c.run(`LOAD '${DUCKDB_TOOLS}ducklake.duckdb_extension'`);
    await c.run(
      `ATTACH 'ducklake:postgres:${libpqOf(dsn)}' AS bronze${options ? ` (${options})` : ""}`,
    );
  } catch (err) {
    reader.close();
    throw err;
  }
  return reader;
}

/**
 * What a reader sees of a table: rows, distinct ledgers, first and last, and a checksum of every
 * row's xdr_sha256 in ledger order.
 */
export async function tableSummary(
  reader: DuckLakeReader,
  table: string,
  at = "",
): Promise<{ rows: number; distinct: number; first: number; last: number; digest: string }> {
  const [r] = await reader.rows<Record<string, string>>(
    `SELECT count(*) AS rows, count(DISTINCT ledger_sequence) AS distinct_ledgers,
            min(ledger_sequence) AS first, max(ledger_sequence) AS last,
            md5(string_agg(xdr_sha256, ',' ORDER BY ledger_sequence)) AS digest
     FROM ${table} ${at}`,
  );
  return {
    rows: Number(r.rows),
    distinct: Number(r.distinct_ledgers),
    first: Number(r.first),
    last: Number(r.last),
    digest: r.digest,
  };
}
