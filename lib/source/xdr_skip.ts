/**
 * Generates the XDR skippers (lib/source/_skippers.generated.ts) from `@stellar/stellar-sdk`'s
 * schema introspection: functions that, given a value's offset, return where it ends without
 * building it. Splitting a LedgerCloseMetaBatch into its ledgers and reading a few header fields
 * only needs extents, and a full decode of a 1 MB ledger allocates hundreds of thousands of
 * objects for nothing.
 *
 * The skippers follow the protocol's XDR exactly (new arms arrive with an SDK upgrade and
 * `deno task skippers`, not a hand edit; tests/source/xdr_skip_test.ts fails while the committed
 * module differs from what this generates). They are generated as source, one function per
 * struct and union with fixed-size runs folded into one bounds check, because V8 then optimizes
 * each call site for the one function it calls: a closure per schema node
 * (tests/support/xdr_skip_reference.ts, the specification they must agree with) walks real pubnet
 * ledgers five times slower. And they are generated ahead of time, so a build worker never loads
 * the SDK (a tenth of a second of CPU and 40 MB per worker).
 */
import { xdr } from "@stellar/stellar-sdk";

// The subset of js-xdr's schema introspection this module reads.
interface Node {
  readonly kind: string;
  readonly name?: string;
  readonly entries?: ReadonlyArray<readonly [string, Node]>;
  readonly element?: Node;
  readonly length?: number;
  readonly maxLength?: number;
  readonly switchOn?: Node;
  readonly cases?: ReadonlyArray<{ readonly discriminant: unknown; readonly arm: Node }>;
  readonly defaultArm?: Node;
  readonly schema?: Node;
  readonly getSchema?: () => Node;
}

type SdkType = { readonly schema: unknown };

/** What the generated module exports: skip a whole type, one field, or up to a field. */
export type Export =
  | { name: string; skip: SdkType }
  | { name: string; field: string; of: SdkType }
  | { name: string; upTo: string; of: SdkType };

/** The skippers lib/source/ledger.ts and lake.ts use. */
export const SKIPPERS: Export[] = [
  { name: "skipLcm", skip: xdr.LedgerCloseMeta },
  { name: "skipLcmExt", skip: xdr.LedgerCloseMetaExt },
  { name: "skipHeaderEntry", skip: xdr.LedgerHeaderHistoryEntry },
  { name: "skipStellarValue", skip: xdr.StellarValue },
  { name: "skipEnvelope", skip: xdr.TransactionEnvelope },
  { name: "skipOptionalBaseFee", field: "baseFee", of: xdr.ParallelTxsComponent },
  { name: "opsOfTxV0", upTo: "operations", of: xdr.TransactionV0 },
  { name: "opsOfTx", upTo: "operations", of: xdr.Transaction },
  { name: "innerOfFeeBump", upTo: "innerTx", of: xdr.FeeBumpTransaction },
];

/** The node a lazy reference or a union arm's field stands for. */
function resolve(s: Node): Node {
  while (s.kind === "lazy" || s.kind === "field") {
    s = s.kind === "lazy" ? s.getSchema!() : s.schema!;
  }
  return s;
}

const pad4 = (n: number) => (n + 3) & ~3;

/** Size in bytes when every value of the schema encodes to the same length, else -1. */
function fixedSize(node: Node, seen = new Set<Node>()): number {
  const s = resolve(node);
  if (seen.has(s)) return -1;
  switch (s.kind) {
    case "int32":
    case "uint32":
    case "float":
    case "bool":
    case "enum":
      return 4;
    case "int64":
    case "uint64":
    case "double":
      return 8;
    case "void":
      return 0;
    case "opaque":
      return pad4(s.length!);
    case "fixedArray": {
      const e = fixedSize(s.element!, seen);
      return e < 0 ? -1 : e * s.length!;
    }
    case "struct": {
      seen.add(s);
      let total = 0;
      for (const [, f] of s.entries!) {
        const n = fixedSize(f, seen);
        if (n < 0) return -1;
        total += n;
      }
      seen.delete(s);
      return total;
    }
    default:
      return -1;
  }
}

/** The source of lib/source/_skippers.generated.ts for `exports`. */
export function generateSkippers(exports: Export[] = SKIPPERS): string {
  const names = new Map<Node, string>();
  const functions: string[] = [];
  const sizes = new Map<Node, number>();
  const size = (s: Node) => {
    let n = sizes.get(s);
    if (n === undefined) sizes.set(s, n = fixedSize(s));
    return n;
  };
  const advance = (n: number) => n === 0 ? "" : `need(v, o, ${n}); o += ${n};`;

  /** The name of the function that skips `node` (generating it on first use). */
  const fn = (node: Node): string => {
    const s = resolve(node);
    let name = names.get(s);
    if (name) return name;
    name = `s${names.size}`;
    names.set(s, name);
    const body = size(s) >= 0 ? advance(size(s)) : statements(s, true);
    functions.push(`function ${name}(v: DataView, o: number): number {\n${body}\nreturn o;\n}`);
    return name;
  };

  /** Statements advancing `o` past the fields of struct `s` before `stop` (all of them: null). */
  const fields = (s: Node, stop: string | null): string => {
    const out: string[] = [];
    let run = 0; // fixed-size fields in a row: one bounds check for all of them
    for (const [name, f] of s.entries!) {
      if (name === stop) break;
      const n = size(f);
      if (n >= 0) {
        run += n;
        continue;
      }
      out.push(advance(run), statements(f));
      run = 0;
    }
    out.push(advance(run));
    return out.filter(Boolean).join("\n");
  };

  /** Statements advancing `o` past a value of `node`; structs and unions are calls unless `own`. */
  const statements = (node: Node, own = false): string => {
    const s = resolve(node);
    const fixed = size(s);
    if (fixed >= 0) return advance(fixed);
    switch (s.kind) {
      case "string":
      case "varOpaque":
        return `{ const n = readU32(v, o);
if (n > ${s.maxLength}) throw new XdrCorruptError(\`opaque length \${n} exceeds ${s.maxLength}\`, o);
need(v, o + 4, (n + 3) & ~3); o += 4 + ((n + 3) & ~3); }`;
      case "option":
        return `{ const p = readU32(v, o);
if (p === 1) { o += 4; ${statements(s.element!)} }
else if (p === 0) o += 4;
else throw new XdrCorruptError(\`bad optional flag \${p}\`, o); }`;
      case "array": {
        const el = size(s.element!);
        const check = `const n = readU32(v, o);
if (n > ${s.maxLength}) throw new XdrCorruptError(\`array length \${n} exceeds ${s.maxLength}\`, o);`;
        if (el >= 0) return `{ ${check} need(v, o + 4, n * ${el}); o += 4 + n * ${el}; }`;
        // Every element takes at least 4 bytes: a corrupt count fails here, not after a long walk.
        return `{ ${check} need(v, o + 4, n * 4); o += 4;
for (let i = 0; i < n; i++) { ${statements(s.element!)} } }`;
      }
      case "fixedArray":
        return `for (let i = 0; i < ${s.length}; i++) { ${statements(s.element!)} }`;
      case "struct":
        return own ? fields(s, null) : `o = ${fn(s)}(v, o);`;
      case "union": {
        if (!own) return `o = ${fn(s)}(v, o);`;
        const signed = s.switchOn!.kind === "int32" || s.switchOn!.kind === "enum";
        const arms = new Map<number, Node>();
        for (const c of s.cases!) {
          const d = typeof c.discriminant === "boolean" ? Number(c.discriminant) : c.discriminant;
          arms.set(d as number, c.arm);
        }
        const cases = [...arms].map(([d, arm]) => `case ${d}: o += 4; ${statements(arm)} break;`);
        const name = (s.name ?? "union").replace(/[^A-Za-z0-9_]/g, "");
        const fallback = s.defaultArm
          ? `default: o += 4; ${statements(s.defaultArm)} break;`
          : `default: throw new XdrCorruptError(\`unknown ${name} discriminant \${d}\`, o);`;
        return `need(v, o, 4);
{ const d = v.${signed ? "getInt32" : "getUint32"}(o);
switch (d) {
${cases.join("\n")}
${fallback}
} }`;
      }
      default:
        throw new Error(`xdr_skip: unsupported schema kind ${s.kind}`);
    }
  };

  const exported = exports.map((e) => {
    if ("skip" in e) return `export const ${e.name}: Skipper = ${fn(e.skip.schema as Node)};`;
    const struct = resolve(e.of.schema as Node);
    const entry = struct.entries?.find(([n]) => n === ("field" in e ? e.field : e.upTo));
    if (struct.kind !== "struct" || !entry) {
      throw new Error(`xdr_skip: ${struct.name} has no field ${"field" in e ? e.field : e.upTo}`);
    }
    if ("field" in e) return `export const ${e.name}: Skipper = ${fn(entry[1])};`;
    const body = fields(struct, e.upTo);
    functions.push(
      `function ${e.name}_(v: DataView, o: number): number {\n${body}\nreturn o;\n}`,
    );
    return `export const ${e.name}: Skipper = ${e.name}_;`;
  });

  return [
    "// deno-fmt-ignore-file",
    "// deno-lint-ignore-file",
    "// Generated by `deno task skippers` (lib/source/xdr_skip.ts) from @stellar/stellar-sdk's XDR",
    "// schema. Do not edit: tests/source/xdr_skip_test.ts fails while this differs from what it",
    "// generates.",
    'import { need, readU32, type Skipper, XdrCorruptError } from "./_xdr.ts";',
    "",
    ...functions,
    "",
    ...exported,
    "",
  ].join("\n");
}
