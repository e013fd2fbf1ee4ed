/**
 * Crash injection for the kill-anywhere tests. With BRONZE_FAILPOINT=<name>:<n> the process
 * SIGKILLs itself the n-th time it reaches failpoint <name> — no cleanup, no finally blocks, the
 * same as a power cut at that instant. Unset (always, outside tests) it costs one Map lookup.
 */
const spec = /^([a-z-]+):(\d+)$/.exec(Deno.env.get("BRONZE_FAILPOINT") ?? "");
let remaining = spec ? Number(spec[2]) : 0;

export function failpoint(name: string): Promise<void> {
  if (spec && spec[1] === name && --remaining === 0) {
    Deno.kill(Deno.pid, "SIGKILL");
    return new Promise(() => {}); // never resumes: the signal is on its way
  }
  return Promise.resolve();
}
