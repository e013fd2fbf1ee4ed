#!/usr/bin/env -S deno run -A --v8-flags=--liftoff-only
// --v8-flags=--liftoff-only (here, in the bronze and demo tasks and in the compiled binary; see
// V8_FLAGS in scripts/compile.ts): PGlite's 8.7 MB of WebAssembly is compiled once by Liftoff and
// not tiered up on background threads, which cost a quarter of opening the embedded catalog's CPU
// and some 70 MB of a copy's peak RSS.
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
