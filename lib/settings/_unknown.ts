/**
 * One problem per command-line word nobody declared, suggesting the command's flag it most likely
 * meant (`--version` → `--version-label`).
 */
export function unknownProblems(flags: readonly string[], words: readonly string[]): string[] {
  const problems: string[] = [];
  let valueOfUnknown = false;
  for (const word of words) {
    if (!word.startsWith("-")) {
      // The value of the unknown option before it, most likely: that option is the problem.
      if (!valueOfUnknown) problems.push(`unexpected argument "${word}" (settings are flags)`);
      valueOfUnknown = false;
      continue;
    }
    const flag = word.split("=")[0];
    valueOfUnknown = !word.includes("=");
    const guess = flags.find((f) => f.startsWith(flag)) ??
      flags.find((f) => editDistance(f, flag) <= 2);
    problems.push(`unknown option ${flag}${guess ? ` (did you mean ${guess}?)` : ""}`);
  }
  return problems;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}
