/**
 * Reading `ledgers_lcm_raw` files back: whole (tests, small files) or one row group at a time
 * through positional reads of a local file (verify, whatever the file's size).
 */
import { open } from "node:fs/promises";
import { zstdDecompressSync } from "node:zlib";
import {
  type AsyncBuffer,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
} from "hyparquet";
import type { PartitionRow } from "./schema.ts";

export type { AsyncBuffer, FileMetaData };
export { parquetMetadataAsync };

/** hyparquet read options for partition files: our codec, and xdr_bytes kept as bytes. */
export const READ_OPTIONS = {
  compressors: { ZSTD: (input: Uint8Array) => zstdDecompressSync(input) },
  utf8: false, // xdr_bytes stays bytes; STRING columns are still decoded
} as const;

/** Reads every row of a partition file (for verification and tests; loads the whole file). */
export async function readPartitionRows(source: string | Uint8Array): Promise<PartitionRow[]> {
  const bytes = typeof source === "string" ? await Deno.readFile(source) : source;
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const rows = await parquetReadObjects({
    file: file as ArrayBuffer,
    ...READ_OPTIONS,
  });
  return rows as unknown as PartitionRow[];
}

type FileHandle = Awaited<ReturnType<typeof open>>;

/** hyparquet's AsyncBuffer over a local file: positional reads, safe when issued concurrently. */
export async function fileBuffer(fh: FileHandle): Promise<AsyncBuffer> {
  const { size } = await fh.stat();
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      const buf = new Uint8Array(Math.max(0, Math.min(end, size) - start));
      let off = 0;
      while (off < buf.length) {
        const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
        if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${start + off}`);
        off += bytesRead;
      }
      return buf.buffer;
    },
  };
}

/**
 * The rows of a Parquet file, one row group at a time, with only the named columns: only one
 * group's column chunks are ever in memory (the writer bounds a group to 64 MB of XDR).
 */
export async function* rowGroups<K extends keyof PartitionRow>(
  file: AsyncBuffer,
  metadata: FileMetaData,
  columns: readonly K[],
): AsyncGenerator<Pick<PartitionRow, K>[]> {
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const n = Number(rg.num_rows);
    const rows = await parquetReadObjects({
      file,
      metadata,
      rowStart,
      rowEnd: rowStart + n,
      columns: [...columns],
      ...READ_OPTIONS,
    });
    rowStart += n;
    yield rows as unknown as Pick<PartitionRow, K>[];
  }
}
