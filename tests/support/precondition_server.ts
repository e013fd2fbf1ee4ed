/**
 * A tiny in-memory object server that ENFORCES write preconditions, for tests only.
 *
 * Why it exists: neither test emulator enforces them. s3rver ignores `If-None-Match: *` and
 * `If-Match`, and firebase-tools' Cloud Storage emulator ignores `ifGenerationMatch`, so against
 * them put-if-absent silently overwrites and the precondition tests would prove nothing. This
 * server speaks just enough of both wire protocols for the real clients (@aws-sdk/client-s3 and
 * @google-cloud/storage) to run bronze's stores against it:
 *
 * - S3 REST, path style: PUT / GET / HEAD / DELETE `/<bucket>/<key>` (ETag, Last-Modified,
 *   `If-None-Match: *` and `If-Match` on PUT, `If-Match` on DELETE) and
 *   `GET /<bucket>?list-type=2&prefix=` (one page; LastModified with milliseconds, where AWS sends
 *   whole seconds, so the store's rounding is exercised). DELETE answers as AWS does: 204 whether
 *   or not the object was there, but 404 NoSuchKey to an `If-Match` on an absent object and 412
 *   to a stale one.
 * - GCS JSON API: `POST /upload/storage/v1/b/<bucket>/o?uploadType=media|multipart|resumable&
 *   name=&ifGenerationMatch=` (resumable: the session's one `PUT` completes it, and the
 *   precondition is checked then, at completion, as GCS does), `GET [/storage/v1]/b/<bucket>/o/
 *   <name>` (metadata, or bytes with `alt=media`; `generation=` pins a generation),
 *   `DELETE [/storage/v1]/b/<bucket>/o/<name>?ifGenerationMatch=` (404 when absent, 412 when
 *   stale, else 204) and `GET [/storage/v1]/b/<bucket>/o?prefix=`. Objects carry timeCreated
 *   and updated.
 *
 * Reads honour `Range: bytes=<from>-` (206), and S3's `If-Match` on GET (412), as a resumed
 * streamed read asks for the rest of one version.
 *
 * Not supported: chunked or resumed resumable uploads, S3 multipart, pagination, auth (signatures
 * are not checked). Listens on 127.0.0.1, ephemeral port.
 */
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";

interface Stored {
  data: Uint8Array<ArrayBuffer>;
  etag: string; // S3: quoted md5 hex
  md5: string; // base64, as GCS reports it
  crc32c: string; // base64, as GCS reports it
  generation: number; // GCS
  updated: Date;
}

/** A GCS resumable upload between its POST and its PUT. */
interface Session {
  bucket: string;
  name: string;
  ifGenerationMatch: string | null;
}

export interface PreconditionServer {
  /** Base URL, e.g. http://127.0.0.1:PORT: the S3 endpoint and the GCS apiEndpoint alike. */
  endpoint: string;
  stop(): Promise<void>;
}

export function startPreconditionServer(): Promise<PreconditionServer> {
  const s3 = new Map<string, Stored>(); // "bucket/key"
  const gcs = new Map<string, Stored>(); // "bucket/name"
  let nextGeneration = 1_700_000_000_000_000;

  const sessions = new Map<string, Session>(); // upload_id
  let nextSession = 1;

  const store = (map: Map<string, Stored>, id: string, data: Uint8Array<ArrayBuffer>): Stored => {
    const md5 = createHash("md5").update(data);
    const obj = {
      data,
      etag: `"${md5.copy().digest("hex")}"`,
      md5: md5.digest("base64"),
      crc32c: Buffer.from(crc32c(data)).toString("base64"),
      generation: nextGeneration++,
      updated: new Date(),
    };
    map.set(id, obj);
    return obj;
  };

  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (path.startsWith("/upload/storage/v1/b/")) {
      if (req.method === "PUT") return await gcsResumablePut(req, url);
      return await gcsUpload(req, url);
    }
    const gcsPath = /^(?:\/storage\/v1)?\/b\/([^/]+)\/o(?:\/(.+))?$/.exec(path);
    if (gcsPath && req.method === "DELETE" && gcsPath[2] !== undefined) {
      return gcsDelete(url, gcsPath[1], decodeURIComponent(gcsPath[2]));
    }
    if (gcsPath) return gcsGet(url, gcsPath[1], gcsPath[2], req.headers.get("range"));
    return await s3Request(req, url);
  };

  // ---- S3 ----

  async function s3Request(req: Request, url: URL): Promise<Response> {
    const [, bucket, ...rest] = url.pathname.split("/");
    const key = rest.map(decodeURIComponent).join("/");
    const id = `${bucket}/${key}`;
    const current = s3.get(id);
    if (req.method === "GET" && key === "") {
      return s3List(bucket, url.searchParams.get("prefix") ?? "");
    }
    if (req.method === "PUT") {
      const data = new Uint8Array(await req.arrayBuffer());
      const ifNoneMatch = req.headers.get("if-none-match");
      const ifMatch = req.headers.get("if-match");
      if (ifNoneMatch === "*" && current) return s3Error(412, "PreconditionFailed", id);
      if (ifMatch !== null && !current) return s3Error(404, "NoSuchKey", id);
      if (ifMatch !== null && ifMatch !== current!.etag) {
        return s3Error(412, "PreconditionFailed", id);
      }
      return new Response(null, { headers: { etag: store(s3, id, data).etag } });
    }
    if (req.method === "GET" || req.method === "HEAD") {
      if (!current) return s3Error(404, "NoSuchKey", id, req.method === "HEAD");
      const ifMatch = req.headers.get("if-match");
      if (req.method === "GET" && ifMatch !== null && ifMatch !== current.etag) {
        return s3Error(412, "PreconditionFailed", id);
      }
      const headers = {
        etag: current.etag,
        "content-type": "application/octet-stream",
        "last-modified": current.updated.toUTCString(),
      };
      if (req.method === "HEAD") {
        return new Response(null, {
          headers: { ...headers, "content-length": String(current.data.length) },
        });
      }
      return ranged(current.data, req.headers.get("range"), headers);
    }
    if (req.method === "DELETE" && key !== "") {
      const ifMatch = req.headers.get("if-match");
      if (ifMatch !== null && !current) return s3Error(404, "NoSuchKey", id);
      if (ifMatch !== null && ifMatch !== "*" && ifMatch !== current!.etag) {
        return s3Error(412, "PreconditionFailed", id);
      }
      s3.delete(id);
      return new Response(null, { status: 204 });
    }
    return s3Error(405, "MethodNotAllowed", id);
  }

  function s3List(bucket: string, prefix: string): Response {
    const keys = [...s3.keys()].filter((id) => id.startsWith(`${bucket}/${prefix}`)).sort();
    const contents = keys.map((id) => {
      const o = s3.get(id)!;
      return `<Contents><Key>${
        xml(id.slice(bucket.length + 1))
      }</Key><Size>${o.data.length}</Size>` +
        `<ETag>${
          xml(o.etag)
        }</ETag><LastModified>${o.updated.toISOString()}</LastModified></Contents>`;
    }).join("");
    return new Response(
      `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${xml(bucket)}</Name>` +
        `<Prefix>${xml(prefix)}</Prefix><KeyCount>${keys.length}</KeyCount>` +
        `<IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`,
      { headers: { "content-type": "application/xml" } },
    );
  }

  function s3Error(status: number, code: string, id: string, noBody = false): Response {
    const body = noBody
      ? null
      : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code>` +
        `<Message>${code}</Message><Resource>/${xml(id)}</Resource></Error>`;
    return new Response(body, { status, headers: { "content-type": "application/xml" } });
  }

  // ---- GCS ----

  async function gcsUpload(req: Request, url: URL): Promise<Response> {
    const bucket = decodeURIComponent(url.pathname.split("/")[5]);
    const body = new Uint8Array(await req.arrayBuffer());
    let name = url.searchParams.get("name");
    let data = body;
    if (url.searchParams.get("uploadType") === "resumable") {
      // Start a session; like GCS, check the precondition when it completes, not now.
      name = name ?? (body.length ? JSON.parse(new TextDecoder().decode(body)).name : null);
      if (!name) return gcsError(400, "no object name");
      const id = String(nextSession++);
      sessions.set(id, {
        bucket,
        name,
        ifGenerationMatch: url.searchParams.get("ifGenerationMatch"),
      });
      const location = new URL(`/upload/storage/v1/b/${encodeURIComponent(bucket)}/o`, url);
      location.search = new URLSearchParams({ uploadType: "resumable", upload_id: id }).toString();
      return new Response(null, { headers: { location: location.href } });
    } else if (url.searchParams.get("uploadType") === "multipart") {
      const boundary = /boundary="?([^";]+)"?/.exec(req.headers.get("content-type") ?? "")?.[1];
      if (!boundary) return gcsError(400, "multipart upload without a boundary");
      const [meta, media] = multipartParts(body, boundary);
      name = name ?? JSON.parse(new TextDecoder().decode(meta)).name;
      data = media;
    } else if (url.searchParams.get("uploadType") !== "media") {
      return gcsError(
        400,
        `uploadType ${url.searchParams.get("uploadType")} is not supported here`,
      );
    }
    if (!name) return gcsError(400, "no object name");
    return gcsCreate(bucket, name, url.searchParams.get("ifGenerationMatch"), data);
  }

  function gcsCreate(
    bucket: string,
    name: string,
    ifGenerationMatch: string | null,
    data: Uint8Array<ArrayBuffer>,
  ): Response {
    const id = `${bucket}/${name}`;
    if (
      ifGenerationMatch !== null && Number(ifGenerationMatch) !== (gcs.get(id)?.generation ?? 0)
    ) {
      return gcsError(412, "At least one of the pre-conditions you specified did not hold.");
    }
    return Response.json(gcsResource(bucket, name, store(gcs, id, data)));
  }

  // The one PUT of a resumable session, with every byte: Content-Range "bytes 0-*/N" (or "*/*").
  async function gcsResumablePut(req: Request, url: URL): Promise<Response> {
    const id = url.searchParams.get("upload_id") ?? "";
    const session = sessions.get(id);
    if (!session) return gcsError(404, `no upload session ${id}`);
    const range = req.headers.get("content-range") ?? "";
    const data = new Uint8Array(await req.arrayBuffer());
    if (range === "bytes */*") return new Response(null, { status: 308 }); // status query: none yet
    const m = /^bytes 0-(?:\*|\d+)\/(\d+|\*)$/.exec(range);
    if (!m || (m[1] !== "*" && Number(m[1]) !== data.length)) {
      return gcsError(400, `only single-request resumable uploads are supported (${range})`);
    }
    sessions.delete(id);
    return gcsCreate(session.bucket, session.name, session.ifGenerationMatch, data);
  }

  function gcsDelete(url: URL, bucket: string, name: string): Response {
    const id = `${bucket}/${name}`;
    const obj = gcs.get(id);
    if (!obj) return gcsError(404, `No such object: ${id}`);
    const want = url.searchParams.get("ifGenerationMatch");
    if (want !== null && Number(want) !== obj.generation) {
      return gcsError(412, "At least one of the pre-conditions you specified did not hold.");
    }
    gcs.delete(id);
    return new Response(null, { status: 204 });
  }

  function gcsGet(
    url: URL,
    bucket: string,
    encodedName?: string,
    range: string | null = null,
  ): Response {
    if (encodedName === undefined) {
      const prefix = url.searchParams.get("prefix") ?? "";
      const items = [...gcs.keys()].filter((id) => id.startsWith(`${bucket}/${prefix}`)).sort()
        .map((id) => gcsResource(bucket, id.slice(bucket.length + 1), gcs.get(id)!));
      return Response.json({ kind: "storage#objects", items });
    }
    const name = decodeURIComponent(encodedName);
    const obj = gcs.get(`${bucket}/${name}`);
    const generation = url.searchParams.get("generation");
    if (!obj || (generation !== null && Number(generation) !== obj.generation)) {
      return gcsError(404, `No such object: ${bucket}/${name}`);
    }
    if (url.searchParams.get("alt") !== "media") {
      return Response.json(gcsResource(bucket, name, obj));
    }
    return ranged(obj.data, range, {
      "content-type": "application/octet-stream",
      "x-goog-generation": String(obj.generation),
      "x-goog-hash": `crc32c=${obj.crc32c},md5=${obj.md5}`,
    });
  }

  /** The whole object, or with `Range: bytes=<from>-` the rest of it from there (206). */
  function ranged(
    data: Uint8Array<ArrayBuffer>,
    range: string | null,
    headers: Record<string, string>,
  ): Response {
    const m = /^bytes=(\d+)-$/.exec(range ?? "");
    if (!m) return new Response(data, { headers });
    const from = Math.min(Number(m[1]), data.length);
    return new Response(data.subarray(from), {
      status: 206,
      headers: { ...headers, "content-range": `bytes ${from}-${data.length - 1}/${data.length}` },
    });
  }

  function gcsResource(bucket: string, name: string, o: Stored) {
    return {
      kind: "storage#object",
      id: `${bucket}/${name}/${o.generation}`,
      bucket,
      name,
      generation: String(o.generation),
      metageneration: "1",
      size: String(o.data.length),
      contentType: "application/octet-stream",
      md5Hash: o.md5,
      crc32c: o.crc32c,
      etag: o.etag,
      timeCreated: o.updated.toISOString(),
      updated: o.updated.toISOString(),
    };
  }

  function gcsError(status: number, message: string): Response {
    return Response.json({ error: { code: status, message, errors: [{ message }] } }, { status });
  }

  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) =>
        resolve({ endpoint: `http://127.0.0.1:${port}`, stop: () => server.shutdown() }),
    }, handler);
  });
}

/** The bodies of a multipart/related payload (metadata JSON, then media). */
function multipartParts(
  body: Uint8Array<ArrayBuffer>,
  boundary: string,
): Uint8Array<ArrayBuffer>[] {
  // latin1: one char per byte, so string indexes are byte offsets
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("latin1");
  const parts: Uint8Array<ArrayBuffer>[] = [];
  const delimiter = `--${boundary}`;
  let at = text.indexOf(delimiter);
  while (at !== -1) {
    const start = at + delimiter.length;
    if (text.startsWith("--", start)) break; // closing delimiter
    const headersEnd = text.indexOf("\r\n\r\n", start);
    const next = text.indexOf(`\r\n${delimiter}`, headersEnd);
    parts.push(body.subarray(headersEnd + 4, next));
    at = next + 2;
  }
  return parts;
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32C (Castagnoli), big-endian, as GCS reports it; the client validates uploads with it. */
function crc32c(data: Uint8Array): Uint8Array {
  let c = 0xffffffff;
  for (const b of data) c = CRC32C_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, (c ^ 0xffffffff) >>> 0);
  return out;
}

function xml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
