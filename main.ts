#!/usr/bin/env -S deno run -A
import "./lib/quiet.ts"; // first: silences dependencies' deprecation warnings before they load
import { run } from "./lib/cli/program.ts";

if (import.meta.main) {
  Deno.exit(await run(Deno.args));
}
