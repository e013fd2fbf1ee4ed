/**
 * `deno task skippers`: writes lib/source/_skippers.generated.ts from the SDK's XDR schema (run
 * it after upgrading @stellar/stellar-sdk; tests/source/xdr_skip_test.ts says when it is due).
 */
import { generateSkippers } from "../lib/source/xdr_skip.ts";

const out = new URL("../lib/source/_skippers.generated.ts", import.meta.url);
await Deno.writeTextFile(out, generateSkippers());
console.log(`wrote ${out.pathname}`);
