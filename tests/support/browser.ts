/**
 * A real browser for tests: Debian's headless Chromium, driven over the Chrome DevTools Protocol
 * (`--remote-debugging-port`) with Deno's own WebSocket, so no browser-automation package is
 * needed. Enough of the protocol for what a person does with the status page: open a page at a
 * window size, wait for something to be true in it, read the rendered DOM, take a screenshot, and
 * know every request it made and every error or policy violation it met.
 *
 * Run as root Chromium needs --no-sandbox; the other flags keep it off the network (no component
 * updates, sync, QUIC probes or first-run fetches), and each browser gets a fresh profile, removed
 * when it closes.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { until, WAIT_MS, within } from "./wait.ts";
import { testTempDir } from "./leftovers.ts";

export const CHROMIUM = "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-extensions",
  "--hide-scrollbars",
  "--mute-audio",
  "--remote-debugging-port=0",
  "--remote-allow-origins=*",
];

/** Why the browser tests cannot run here (null: they can). */
export function browserMissing(): string | null {
  try {
    Deno.statSync(CHROMIUM);
    return null;
  } catch {
    return `${CHROMIUM} is not installed (Debian's chromium package)`;
  }
}

type Message = {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
};

export class Browser {
  #next = 1;
  readonly #waiting = new Map<number, { resolve(r: unknown): void; reject(e: Error): void }>();
  readonly #listeners = new Set<(m: Message) => void>();

  private constructor(
    private readonly child: Deno.ChildProcess,
    private readonly socket: WebSocket,
    private readonly profile: string,
  ) {
    socket.onmessage = (e) => {
      const m = JSON.parse(e.data as string) as Message;
      if (m.id !== undefined) {
        const w = this.#waiting.get(m.id);
        this.#waiting.delete(m.id);
        if (m.error) w?.reject(new Error(`CDP: ${m.error.message}`));
        else w?.resolve(m.result);
      } else {
        for (const l of this.#listeners) l(m);
      }
    };
  }

  static async launch(): Promise<Browser> {
    const profile = await testTempDir("chromium");
    const child = new Deno.Command(CHROMIUM, {
      args: [...FLAGS, `--user-data-dir=${profile}`, "about:blank"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      // Chromium writes the port it chose, and the browser target's path, into the profile.
      const file = join(profile, "DevToolsActivePort");
      let text = "";
      await until(async () => {
        text = await readFile(file, "utf8").catch(() => "");
        return text.split("\n").length >= 2 && text.split("\n")[1] !== "";
      }, "Chromium writing its DevToolsActivePort");
      const [port, path] = text.trim().split("\n");
      const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`);
      await within(
        new Promise<void>((ok, fail) => {
          socket.onopen = () => ok();
          socket.onerror = () => fail(new Error("cannot connect to Chromium's DevTools socket"));
        }),
        "the DevTools socket opening",
      );
      return new Browser(child, socket, profile);
    } catch (err) {
      child.kill("SIGKILL");
      await child.status;
      await rm(profile, { recursive: true, force: true });
      throw err;
    }
  }

  /** One protocol call, answered within WAIT_MS. */
  send<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<T> {
    const id = this.#next++;
    const answer = new Promise<T>((resolve, reject) =>
      this.#waiting.set(id, { resolve: resolve as (r: unknown) => void, reject })
    );
    this.socket.send(JSON.stringify({ id, method, params, sessionId }));
    return within(answer, `Chromium answering ${method}`);
  }

  listen(fn: (m: Message) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** A new tab of `width` × `height` CSS pixels (`mobile`: a phone's viewport and touch). */
  async page(
    opts: { width?: number; height?: number; mobile?: boolean } = {},
  ): Promise<Page> {
    const { targetId } = await this.send<{ targetId: string }>("Target.createTarget", {
      url: "about:blank",
    });
    const { sessionId } = await this.send<{ sessionId: string }>("Target.attachToTarget", {
      targetId,
      flatten: true,
    });
    const page = new Page(this, targetId, sessionId);
    await page.setup(opts.width ?? 1280, opts.height ?? 900, opts.mobile ?? false);
    return page;
  }

  async close(): Promise<void> {
    try {
      await this.send("Browser.close").catch(() => {});
      this.socket.close();
      await within(this.child.status, "Chromium exiting", 15_000).catch(() => {
        this.child.kill("SIGKILL");
        return this.child.status;
      });
    } finally {
      await rm(this.profile, { recursive: true, force: true });
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

export class Page {
  /** Every URL the page requested. */
  readonly requests: string[] = [];
  /** Exceptions, console errors and policy violations it met. */
  readonly problems: string[] = [];
  readonly #stop: () => void;
  #loaded = 0;

  constructor(
    private readonly browser: Browser,
    private readonly targetId: string,
    readonly sessionId: string,
  ) {
    this.#stop = browser.listen((m) => {
      if (m.sessionId !== sessionId) return;
      const p = m.params ?? {};
      if (m.method === "Network.requestWillBeSent") {
        this.requests.push((p.request as { url: string }).url);
      } else if (m.method === "Runtime.exceptionThrown") {
        const d = p.exceptionDetails as { text: string; exception?: { description?: string } };
        this.problems.push(`exception: ${d.exception?.description ?? d.text}`);
      } else if (m.method === "Log.entryAdded") {
        const e = p.entry as { level: string; text: string };
        if (e.level === "error") this.problems.push(`log: ${e.text}`);
      } else if (m.method === "Runtime.consoleAPICalled" && p.type === "error") {
        this.problems.push(`console: ${JSON.stringify(p.args)}`);
      } else if (m.method === "Page.loadEventFired") {
        this.#loaded++;
      }
    });
  }

  #send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}) {
    return this.browser.send<T>(method, params, this.sessionId);
  }

  async setup(width: number, height: number, mobile: boolean): Promise<void> {
    for (const domain of ["Page", "Runtime", "Network", "Log"]) {
      await this.#send(`${domain}.enable`);
    }
    await this.#send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile,
    });
    if (mobile) await this.#send("Emulation.setTouchEmulationEnabled", { enabled: true });
  }

  /** Opens `url` and waits for its load event. */
  async goto(url: string): Promise<void> {
    const before = this.#loaded;
    const r = await this.#send<{ errorText?: string }>("Page.navigate", { url });
    if (r.errorText) throw new Error(`cannot open ${url}: ${r.errorText}`);
    await until(() => this.#loaded > before, `${url} loading`);
  }

  /** The value of `expression` in the page (awaited, returned by value). */
  async eval<T>(expression: string): Promise<T> {
    const r = await this.#send<{
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    }>("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) {
      throw new Error(
        `in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`,
      );
    }
    return r.result.value as T;
  }

  /** Waits (bounded) until `expression` is truthy in the page. */
  async waitFor(expression: string, what: string, ms = WAIT_MS): Promise<void> {
    await until(async () => Boolean(await this.eval(expression)), what, { ms, everyMs: 100 });
  }

  /** A PNG of the whole page (`viewport`: only what the window shows) into `path`. */
  async screenshot(path: string, { viewport = false } = {}): Promise<Uint8Array> {
    const { data } = await this.#send<{ data: string }>("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: !viewport,
    });
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    await writeFile(path, bytes);
    return bytes;
  }

  /** Prints the page as a PDF (what a person gets on paper), into `path`. */
  async pdf(path: string): Promise<Uint8Array> {
    const { data } = await this.#send<{ data: string }>("Page.printToPDF", {});
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    await writeFile(path, bytes);
    return bytes;
  }

  /** Emulates print media for the checks that follow (or screen again with `false`). */
  async printMedia(on: boolean): Promise<void> {
    await this.#send("Emulation.setEmulatedMedia", { media: on ? "print" : "" });
  }

  async close(): Promise<void> {
    this.#stop();
    await this.browser.send("Target.closeTarget", { targetId: this.targetId }).catch(() => {});
  }
}
