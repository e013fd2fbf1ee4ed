/**
 * `deno task readme`: rewrites README.md's reference sections (commands, settings, exit codes)
 * from the code (lib/cli/reference.ts), then formats it as `deno fmt` would.
 */
import { regenerate } from "../lib/cli/reference.ts";

const README = new URL("../README.md", import.meta.url).pathname;
await Deno.writeTextFile(README, regenerate(await Deno.readTextFile(README)));
const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", README] }).output();
if (!fmt.success) throw new Error(`deno fmt README.md: ${new TextDecoder().decode(fmt.stderr)}`);
console.log("README.md: reference sections rewritten from the code");
