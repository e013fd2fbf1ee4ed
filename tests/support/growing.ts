/**
 * A lake that grows while a copier runs, as Galexie writes one, object by object (copied from a
 * lake made up front, so the hash chain runs on), and a running `bronze copy` whose stderr a test
 * reads line by line to know where it is.
 */
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { objectKey } from "../../lib/source/lake_layout.ts";
import { syntheticLake } from "./lakes.ts";
import { EXIT_MS, Output, within } from "./wait.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = { ledgersPerBatch: 1, batchesPerPartition: 64000 } as const;

/** A lake in `dir` that holds nothing yet; `publish` adds ledgers (of at most 200). */
export async function growingLake(dir: string) {
  const full = await syntheticLake({
    network: "testnet",
    start: 1,
    count: 200,
    lcmVersion: 2,
    seed: 5,
  });
  await copyFile(join(full, ".config.json"), join(dir, ".config.json"));
  return {
    url: dir,
    /** The complete lake the ledgers come from (a backfill of it is the reference). */
    full,
    async publish(...ledgers: number[]) {
      for (const seq of ledgers) {
        const key = objectKey(CONFIG as never, seq, "zst");
        await mkdir(dirname(join(dir, key)), { recursive: true });
        await copyFile(join(full, key), join(dir, key));
      }
    },
  };
}

export const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** A running `bronze copy` (or another command) whose stderr the test reads as it comes. */
export class Copier {
  readonly child: Deno.ChildProcess;
  readonly #stderr: Output;

  constructor(env: Record<string, string>, args: string[], command = "copy") {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, command, ...args],
      env,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#stderr = new Output(this.child.stderr, `bronze ${command}`);
  }

  /** All it said so far. */
  get text(): string {
    return this.#stderr.text;
  }

  /** Waits (bounded) until `pattern` has appeared; throws, with what was read, if it ends first. */
  until(pattern: RegExp, ms?: number): Promise<RegExpExecArray> {
    return this.#stderr.until(pattern, ms);
  }

  /** Waits (bounded) for it to exit. */
  async end(ms = EXIT_MS): Promise<Deno.CommandStatus> {
    await this.#stderr.end(ms);
    return await within(this.child.status, `bronze exiting`, ms);
  }

  /** Killed if it still runs, and waited for (bounded): `await using` ends it however a test ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch { /* exited already */ }
    await within(this.child.status, "bronze exiting once killed");
  }
}
