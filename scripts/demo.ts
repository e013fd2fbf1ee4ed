/**
 * `deno task demo`: bronze's main job on its embedded defaults, on a fresh clone: copies a sample
 * lake with the embedded catalog and the local checkpoint, then shows coverage and the
 * checkpoint. Run it twice: the second run finds the range complete.
 *
 * Everything goes under ./demo (state in ./demo/state, partitions in ./demo/data), so the
 * README's Quick start, which uses the defaults ./state and ./data, starts from nothing after it.
 *
 * The lake is the real testnet sample in ../shared/stellar-samples when it is there (third-party
 * data, never copied into this repository), otherwise a synthetic one generated into ./demo.
 */
import { run as main } from "../lib/cli/program.ts";
import { makeLake } from "./make-lake.ts";

const real = new URL("../../shared/stellar-samples/testnet", import.meta.url).pathname;
let source = real;
let range = ["--start", "1410048", "--end", "1410367", "--partition-size", "100"];
try {
  await Deno.stat(`${real}/.config.json`);
  console.error(`[demo] sample lake: real testnet ledgers in ${real}`);
} catch {
  source = "./demo/sample-lake";
  range = ["--start", "1", "--end", "3000", "--partition-size", "1000"];
  try {
    await Deno.stat(`${source}/.config.json`);
  } catch {
    console.error(`[demo] generating a synthetic testnet lake of 3000 ledgers in ${source}`);
    await makeLake({
      url: source,
      network: "testnet",
      start: 1,
      count: 3000,
      lcmVersion: 2,
      ledgerBytes: 4096,
    });
  }
}

const dirs = ["--state-dir", "./demo/state"];
for (
  const args of [
    [
      "copy",
      "--source",
      source,
      "--network",
      "testnet",
      ...dirs,
      "--storage",
      "./demo/data",
      ...range,
    ],
    ["coverage", ...dirs],
    ["checkpoint", "show", ...dirs],
  ]
) {
  console.error(`\n$ bronze ${args.join(" ")}`);
  const code = await main(args);
  if (code !== 0) Deno.exit(code);
}
