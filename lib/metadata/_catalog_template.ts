/**
 * The embedded catalog's template: a PGlite data directory made once, at build time, by PGlite's
 * initdb and every shipped migration (`deno task catalog-template`), packed into one zstd file
 * that ships with bronze (beside this module; `deno compile --include`s it). A first use unpacks
 * it into the state dir instead of running initdb and the migrations there: initdb alone starts a
 * second PGlite and the initdb program (seconds, some 350 MB), the nine migrations seconds more.
 *
 * What it unpacks is the same data directory a first use would make (tests/metadata/
 * catalog_template_test.ts compares the schemas and the migrations table with a fresh initdb +
 * migrate), so the catalog is still a real PostgreSQL with the same migrations and constraints; a
 * template older than this bronze's migrations (or none) only costs the migrations it lacks.
 *
 * The format: the unpacked length (4 bytes, little-endian), then one zstd frame of: a 4-byte
 * little-endian header length, a JSON header (the migrations applied, every directory and file
 * with its mode and size), then the files' bytes in header order.
 */
import { constants, zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { join } from "node:path";

/** The template shipped with this bronze. */
export const TEMPLATE_URL = new URL("./_catalog_template.zst", import.meta.url);

interface Entry {
  /** Path inside the data directory, `/`-separated. */
  path: string;
  mode: number;
  /** Bytes of a file; absent for a directory. */
  size?: number;
}

interface Header {
  format: 1;
  /** Names of the migrations applied in it, in the order they were applied. */
  migrations: string[];
  entries: Entry[];
}

/** What a template holds, read from its bytes. */
export interface Template {
  migrations: string[];
  /** Writes the data directory into `dir` (which must not exist yet). */
  unpack(dir: string): Promise<void>;
}

/** Packs the data directory `dataDir` of a closed PGlite, with the migrations applied in it. */
export async function packTemplate(dataDir: string, migrations: string[]): Promise<Uint8Array> {
  const entries: Entry[] = [];
  const chunks: Uint8Array[] = [];
  const walk = async (rel: string) => {
    const names = [...Deno.readDirSync(join(dataDir, rel))].map((e) => e.name).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await Deno.lstat(join(dataDir, path));
      const mode = (st.mode ?? 0o600) & 0o777;
      if (st.isDirectory) {
        entries.push({ path, mode });
        await walk(path);
      } else if (st.isFile) {
        const bytes = await Deno.readFile(join(dataDir, path));
        entries.push({ path, mode, size: bytes.length });
        chunks.push(bytes);
      } else {
        throw new Error(`${join(dataDir, path)}: neither a file nor a directory`);
      }
    }
  };
  await walk("");
  const header = new TextEncoder().encode(
    JSON.stringify({ format: 1, migrations, entries } satisfies Header),
  );
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, header.length, true);
  const raw = new Uint8Array(
    4 + header.length + chunks.reduce((n, c) => n + c.length, 0),
  );
  let at = 0;
  for (const part of [length, header, ...chunks]) {
    raw.set(part, at);
    at += part.length;
  }
  const packed = zstdCompressSync(raw, { params: { [ZSTD_C_LEVEL]: 19 } });
  const out = new Uint8Array(4 + packed.length);
  new DataView(out.buffer).setUint32(0, raw.length, true);
  out.set(packed, 4);
  return out;
}

const ZSTD_C_LEVEL = constants.ZSTD_c_compressionLevel;

/** Reads a template: undefined when there is none at `url` (a build without it). */
export async function readTemplate(url: URL = TEMPLATE_URL): Promise<Template | undefined> {
  let packed: Uint8Array;
  try {
    packed = await Deno.readFile(url);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  // Into one buffer of the known size: by default zstdDecompressSync gathers 40 MB in 16 KiB
  // chunks (seconds of CPU, 180 MB), and a buffer grown by doubling costs 3x the CPU of this.
  const size = new DataView(packed.buffer, packed.byteOffset).getUint32(0, true);
  const raw = zstdDecompressSync(packed.subarray(4), { chunkSize: size });
  if (raw.length !== size) throw new Error(`${url.pathname}: ${raw.length} bytes, not ${size}`);
  const headerLength = new DataView(raw.buffer, raw.byteOffset).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(raw.subarray(4, 4 + headerLength))) as Header;
  if (header.format !== 1) throw new Error(`${url.pathname}: unknown template format`);
  return {
    migrations: header.migrations,
    async unpack(dir: string) {
      await Deno.mkdir(dir, { mode: 0o700 });
      let at = 4 + headerLength;
      for (const e of header.entries) {
        const path = join(dir, e.path);
        // Synchronously: a thousand small files, each write faster than a promise's round trip.
        if (e.size === undefined) {
          Deno.mkdirSync(path, { mode: e.mode });
          continue;
        }
        Deno.writeFileSync(path, raw.subarray(at, at + e.size), { mode: e.mode });
        at += e.size;
      }
    },
  };
}
