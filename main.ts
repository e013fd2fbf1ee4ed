#!/usr/bin/env -S deno run -A
import "./lib/runtime/quiet.ts"; // first: silences dependencies' deprecation warnings before they load
import { report, run } from "./lib/cli/program.ts";

if (import.meta.main) {
  // A rejection nobody awaited is still one line, never a stack trace.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    Deno.exit(report(e.reason));
  });
  Deno.exit(await run(Deno.args));
}
