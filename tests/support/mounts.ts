/**
 * Small filesystems of the tests' own, to meet the machine's refusals for real: a tmpfs of a few
 * hundred kilobytes fills up (ENOSPC) and can be grown in place (`remount,size=`); a folder
 * bind-mounted read-only onto itself refuses every write (EROFS), even root's. Both need root (as
 * the tests run in CI); MOUNTS_ABSENT says why they cannot be had here, for `ignore`. A killed
 * test's mounts are unmounted by the next run's sweep (leftovers.ts).
 */
import { join } from "node:path";
import { testTempDir } from "./leftovers.ts";

async function sh(cmd: string, ...args: string[]): Promise<{ ok: boolean; err: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  return { ok: out.success, err: new TextDecoder().decode(out.stderr).trim() };
}

/** Why mounts cannot be made here (false: they can). */
export const MOUNTS_ABSENT: string | false = await (async () => {
  if (Deno.uid() !== 0) return "needs root to mount a tmpfs (the tests run as root in CI)";
  const dir = await testTempDir("mount-probe");
  try {
    const r = await sh("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir);
    if (!r.ok) return `mount -t tmpfs failed here: ${r.err}`;
    await sh("umount", dir);
    return false;
  } catch (e) {
    return `cannot run mount: ${(e as Error).message}`;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
})();

export interface Tmpfs extends AsyncDisposable {
  readonly path: string;
  /** Grows (or shrinks) it in place, its files kept. */
  resize(bytes: number): Promise<void>;
}

/** A tmpfs of `bytes` on a fresh folder; unmounted and removed on dispose. */
export async function tmpfs(bytes: number): Promise<Tmpfs> {
  const path = await testTempDir("tmpfs");
  const r = await sh("mount", "-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", path);
  if (!r.ok) throw new Error(`mount tmpfs on ${path}: ${r.err}`);
  return {
    path,
    async resize(size: number) {
      const r = await sh("mount", "-o", `remount,size=${size}`, path);
      if (!r.ok) throw new Error(`remount ${path}: ${r.err}`);
    },
    async [Symbol.asyncDispose]() {
      await sh("umount", path);
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** `dir` (made if absent) read-only, by a read-only bind mount onto itself, until disposed. */
export async function readOnly(dir: string): Promise<AsyncDisposable> {
  await Deno.mkdir(dir, { recursive: true });
  for (const args of [["--bind", dir, dir], ["-o", "remount,bind,ro", dir]]) {
    const r = await sh("mount", ...args);
    if (!r.ok) throw new Error(`mount ${args.join(" ")}: ${r.err}`);
  }
  return {
    async [Symbol.asyncDispose]() {
      await sh("umount", dir);
    },
  };
}

/** Every temp file (`.<name>.tmp-<hex>`) under `dir`: what a half-done write would leave. */
export function tempFilesUnder(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) walk(p);
      else if (/\.tmp-[0-9a-f]{16}$/.test(e.name)) found.push(p);
    }
  };
  walk(dir);
  return found;
}
