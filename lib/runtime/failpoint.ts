/**
 * Crash and pause injection for the tests: BRONZE_FAILPOINT=<name>:<n>[:pause]. Unset (always,
 * outside tests) it costs one comparison.
 *
 * - kill (the default): the process SIGKILLs itself the n-th time it reaches failpoint <name> —
 *   no cleanup, no finally blocks, the same as a power cut at that instant.
 * - pause: the n-th time, it prints `[failpoint] paused at <name>:<n>` on stderr and waits until
 *   `resume()` says go (the run was interrupted) or, on the main thread, a SIGUSR1 comes; else
 *   forever. A test then acts (sends a signal, cuts a network) with the process at a known point
 *   instead of after a guessed delay.
 * - throw: the n-th time, it throws a plain Error (not a BronzeError): a bug, as the user would
 *   meet one.
 * - cut: the n-th time, it rejects with an error shaped as a connection dropped under the caller
 *   (ECONNRESET): placed after a request whose effect is done (a catalog COMMIT), its answer is
 *   lost as a network would lose it.
 *
 * Counts are per thread: a build worker counts its own `build-ledger` passes.
 */
const spec = /^([a-z-]+):(\d+)(?::(kill|pause|throw|cut))?$/.exec(
  Deno.env.get("BRONZE_FAILPOINT") ?? "",
);
let remaining = spec ? Number(spec[2]) : 0;

export function failpoint(name: string, resume?: () => boolean): Promise<void> {
  if (!spec || spec[1] !== name || --remaining !== 0) return Promise.resolve();
  if (spec[3] === "throw") return Promise.reject(new Error(`failpoint ${name}:${spec[2]} threw`));
  if (spec[3] === "cut") {
    console.error(`[failpoint] cut at ${name}:${spec[2]}`);
    return Promise.reject(
      Object.assign(new Error(`connection cut by failpoint ${name}:${spec[2]}`), {
        code: "ECONNRESET",
      }),
    );
  }
  if (spec[3] !== "pause") {
    Deno.kill(Deno.pid, "SIGKILL");
    return new Promise(() => {}); // never resumes: the signal is on its way
  }
  console.error(`[failpoint] paused at ${name}:${spec[2]}`);
  return new Promise((done) => {
    let go = false;
    const usr1 = () => go = true;
    try {
      Deno.addSignalListener("SIGUSR1", usr1);
    } catch { /* a worker thread: only resume() */ }
    const poll = () => {
      if (!go && !resume?.()) return void setTimeout(poll, 10);
      try {
        Deno.removeSignalListener("SIGUSR1", usr1);
      } catch { /* never added */ }
      done();
    };
    poll();
  });
}
