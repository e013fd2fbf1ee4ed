/**
 * README.md's reference sections (commands, settings, exit codes) are what the code says now:
 * a flag, command or exit code added without `deno task readme` fails here.
 */
import assert from "node:assert/strict";
import { regenerate, sectionOf, SECTIONS } from "../../lib/cli/reference.ts";
import { EXIT, EXIT_MEANINGS } from "../../lib/runtime/errors.ts";
import { type CommandName, COMMANDS, type Key, specOf, SPECS } from "../../lib/settings/mod.ts";

const README = await Deno.readTextFile(new URL("../../README.md", import.meta.url));

/** Table cells trimmed and separator rows dropped: what `deno fmt`'s alignment does not change. */
function normalized(text: string): string[] {
  return text.split("\n").filter((l) => !/^\|[\s|:-]+\|$/.test(l)).map((l) =>
    l.startsWith("|") ? l.split(/(?<!\\)\|/).map((c) => c.trim()).join("|") : l.trimEnd()
  );
}

for (const name of Object.keys(SECTIONS) as (keyof typeof SECTIONS)[]) {
  Deno.test(`README.md's ${name} section is made from the code (deno task readme rewrites it)`, () => {
    const section = sectionOf(README, name);
    assert.ok(section !== null, `README.md has no reference:${name} markers`);
    assert.deepEqual(normalized(section), normalized(SECTIONS[name]()));
  });
}

Deno.test("the settings table has a row for every setting (and each command's own meaning of one), and names every command that takes it", () => {
  const rows = normalized(sectionOf(README, "settings")!).slice(1);
  const names = Object.keys(COMMANDS) as CommandName[];
  const specs = new Set(
    names.flatMap((n) => (COMMANDS[n].settings as readonly Key[]).map((k) => specOf(n, k))),
  );
  assert.equal(rows.length, specs.size);
  assert.ok(specs.size > Object.keys(SPECS).length);
  const ends = rows.filter((r) => r.startsWith("|`--end`|"));
  assert.deepEqual(ends.map((r) => r.split("|").at(-2)), [
    "coverage, verify, repair, compact, lineage",
    "copy",
  ]);
  const copyRow = rows.find((r) => r.startsWith("|`--fleet`|"))!;
  assert.match(copyRow, /\|copy\|$/);
  const catalogRow = rows.find((r) => r.startsWith("|`--catalog`|"))!;
  assert.match(catalogRow, /\|all\|$/);
  assert.ok(Object.keys(COMMANDS).length > 10);
});

Deno.test("every exit code bronze uses has a row", () => {
  const documented = EXIT_MEANINGS.flatMap(([c]) => c.split(" / ").map(Number));
  for (const code of Object.values(EXIT)) assert.ok(documented.includes(code), `exit ${code}`);
});

Deno.test("regenerate refuses a README without the markers, naming them", () => {
  assert.throws(
    () => regenerate("# bronze\n"),
    {
      message:
        "README.md has no <!-- reference:commands --> … <!-- /reference:commands --> section",
    },
  );
});
