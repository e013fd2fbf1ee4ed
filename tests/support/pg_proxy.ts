/**
 * A TCP proxy in front of PostgreSQL that counts, at the wire, the statements a client sends
 * whose text holds a marker (a comment such as `/* bronze status *\/`): what the catalog is
 * actually asked, whoever asks it; and that can cut the client off from the server and let it
 * back. The client is given the proxy's DSN instead of the server's.
 */
export interface CountingProxy {
  /** The DSN through the proxy. */
  readonly dsn: string;
  /** Statements seen so far holding the marker. */
  readonly count: number;
  /**
   * The network between the client and the server goes: every connection through the proxy is
   * closed (the server sees its sessions end), and new ones are closed as soon as they come, until
   * restore(). The proxy keeps its port, so the client's DSN works again after.
   */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function countingProxy(dsn: string, marker: string): Promise<CountingProxy> {
  const server = new URL(dsn);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const pumps = new Set<Promise<void>>();
  let count = 0;
  let cut = false;
  const pump = async (from: Deno.Conn, to: Deno.Conn, counting: boolean) => {
    // latin1 maps bytes to characters one to one: a marker split across reads is still found.
    const latin1 = new TextDecoder("latin1");
    let tail = "";
    try {
      for await (const chunk of from.readable) {
        if (counting) {
          const text = tail + latin1.decode(chunk);
          for (let i = text.indexOf(marker); i >= 0; i = text.indexOf(marker, i + 1)) count++;
          tail = text.slice(-(marker.length - 1));
        }
        let written = 0;
        while (written < chunk.length) written += await to.write(chunk.subarray(written));
      }
    } catch {
      /* either side closed */
    } finally {
      for (const c of [from, to]) {
        try {
          c.close();
        } catch { /* closed already */ }
        open.delete(c);
      }
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      if (cut) {
        client.close();
        continue;
      }
      open.add(client);
      try {
        const upstream = await Deno.connect({
          hostname: server.hostname,
          port: Number(server.port || 5432),
        });
        open.add(upstream);
        for (const p of [pump(client, upstream, true), pump(upstream, client, false)]) {
          pumps.add(p);
          p.finally(() => pumps.delete(p));
        }
      } catch {
        client.close();
        open.delete(client);
      }
    }
  })().catch(() => {});
  const proxied = new URL(dsn);
  proxied.host = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  const close = async () => {
    try {
      listener.close();
    } catch { /* closed already */ }
    for (const c of open) {
      try {
        c.close();
      } catch { /* closed already */ }
    }
    await accepting;
    await Promise.allSettled([...pumps]);
  };
  return Promise.resolve({
    dsn: proxied.toString(),
    get count() {
      return count;
    },
    cut() {
      cut = true;
      for (const c of open) {
        try {
          c.close();
        } catch { /* closed already */ }
      }
    },
    restore() {
      cut = false;
    },
    close,
    [Symbol.asyncDispose]: close,
  });
}
