/** Runs `deno run main.ts …` as a user would, for end-to-end tests. */
import { EXIT_MS } from "./wait.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/**
 * Runs bronze with `args` and waits for it to exit: bounded by `opts.ms` (EXIT_MS), after which
 * the command is stopped (SIGTERM) and the test fails saying so, with what it printed.
 */
export async function runCli(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; clearEnv?: boolean; ms?: number } = {},
): Promise<CliResult> {
  const ms = opts.ms ?? EXIT_MS;
  const deadline = AbortSignal.timeout(ms);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: opts.env,
    cwd: opts.cwd,
    stdout: "piped",
    stderr: "piped",
    signal: deadline,
  }).output();
  const dec = new TextDecoder();
  const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  if (deadline.aborted) {
    throw new Error(
      `bronze ${args.join(" ")} did not exit within ${
        ms / 1000
      } s; it said:\n${r.stderr}${r.stdout}`,
    );
  }
  return r;
}
