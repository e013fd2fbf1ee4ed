/**
 * Walks XDR bytes without building values: given a schema of `@stellar/stellar-sdk`'s `xdr`
 * types, returns where the encoded value ends. Splitting a LedgerCloseMetaBatch into its ledgers
 * and reading a few header fields only needs extents, and a full decode of a 1 MB ledger allocates
 * hundreds of thousands of objects for nothing.
 *
 * The skipper is generated once per root type from the SDK's own schema introspection, so it
 * follows the protocol's XDR exactly (new arms arrive with an SDK upgrade, not a hand edit here).
 * It is generated as JavaScript source, one function per struct and union with fixed-size runs
 * folded into one bounds check, because V8 then optimizes each call site for the one function it
 * calls: a closure per schema node (tests/support/xdr_skip_reference.ts, the specification this
 * must agree with) walks real pubnet ledgers three times slower. The walk is a third of a copy's
 * CPU beyond the unavoidable on real ledgers, which have many small structures.
 */
import { xdr } from "@stellar/stellar-sdk";

/** Thrown on bytes that do not follow the schema: truncated, unknown discriminant, too long. */
export class XdrCorruptError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} at byte ${offset}`);
    this.name = "XdrCorruptError";
  }
}

/** Returns the offset just past the value starting at `off`. */
export type Skipper = (view: DataView, off: number) => number;

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

function need(view: DataView, off: number, n: number): void {
  if (n < 0 || off + n > view.byteLength) {
    throw new XdrCorruptError(
      `truncated XDR: need ${n} byte(s), have ${view.byteLength - off}`,
      off,
    );
  }
}

function u32(view: DataView, off: number): number {
  need(view, off, 4);
  return view.getUint32(off);
}

const pad4 = (n: number) => (n + 3) & ~3;

/** The node a lazy reference or a union arm's field stands for. */
function resolve(s: Node): Node {
  while (s.kind === "lazy" || s.kind === "field") {
    s = s.kind === "lazy" ? s.getSchema!() : s.schema!;
  }
  return s;
}

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

/**
 * Generates the skipper of `root` and of everything it reaches: one function per struct and
 * union, calling each other by name, with everything else inlined.
 */
function generate(root: Node): Skipper {
  const names = new Map<Node, string>();
  const functions: string[] = [];
  const fixedMemo = new Map<Node, number>();
  const size = (s: Node) => {
    let n = fixedMemo.get(s);
    if (n === undefined) fixedMemo.set(s, n = fixedSize(s));
    return n;
  };

  /** The name of the function that skips `node` (generating it on first use). */
  const fn = (node: Node): string => {
    const s = resolve(node);
    let name = names.get(s);
    if (name) return name;
    name = `s${names.size}`;
    names.set(s, name);
    const body = size(s) >= 0 ? advance(size(s)) : statements(s, true);
    functions.push(`function ${name}(v, o) {\n${body}\nreturn o;\n}`);
    return name;
  };

  const advance = (n: number) => n === 0 ? "" : `need(v, o, ${n}); o += ${n};`;

  /** Statements advancing `o` past a value of `node`; structs and unions are calls unless `own`. */
  const statements = (node: Node, own = false): string => {
    const s = resolve(node);
    const fixed = size(s);
    if (fixed >= 0) return advance(fixed);
    switch (s.kind) {
      case "string":
      case "varOpaque":
        return `{ const n = u32(v, o);
if (n > ${s.maxLength}) throw new XdrCorruptError(\`opaque length \${n} exceeds ${s.maxLength}\`, o);
need(v, o + 4, (n + 3) & ~3); o += 4 + ((n + 3) & ~3); }`;
      case "option":
        return `{ const p = u32(v, o);
if (p === 1) { o += 4; ${statements(s.element!)} }
else if (p === 0) o += 4;
else throw new XdrCorruptError(\`bad optional flag \${p}\`, o); }`;
      case "array": {
        const el = size(s.element!);
        const check = `const n = u32(v, o);
if (n > ${s.maxLength}) throw new XdrCorruptError(\`array length \${n} exceeds ${s.maxLength}\`, o);`;
        if (el >= 0) return `{ ${check} need(v, o + 4, n * ${el}); o += 4 + n * ${el}; }`;
        // Every element takes at least 4 bytes: a corrupt count fails here, not after a long walk.
        return `{ ${check} need(v, o + 4, n * 4); o += 4;
for (let i = 0; i < n; i++) { ${statements(s.element!)} } }`;
      }
      case "fixedArray":
        return `for (let i = 0; i < ${s.length}; i++) { ${statements(s.element!)} }`;
      case "struct": {
        if (!own) return `o = ${fn(s)}(v, o);`;
        const out: string[] = [];
        let run = 0; // fixed-size fields in a row: one bounds check for all of them
        for (const [, f] of s.entries!) {
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
      }
      case "union": {
        if (!own) return `o = ${fn(s)}(v, o);`;
        const signed = s.switchOn!.kind === "int32" || s.switchOn!.kind === "enum";
        const arms = new Map<number, Node>();
        for (const c of s.cases!) {
          const d = typeof c.discriminant === "boolean" ? Number(c.discriminant) : c.discriminant;
          arms.set(d as number, c.arm);
        }
        const cases = [...arms].map(([d, arm]) => `case ${d}: o += 4; ${statements(arm)} break;`);
        const fallback = s.defaultArm
          ? `default: o += 4; ${statements(s.defaultArm)} break;`
          : `default: throw new XdrCorruptError(\`unknown ${
            (s.name ?? "union").replace(/[^A-Za-z0-9_]/g, "")
          } discriminant \${d}\`, o);`;
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

  const entry = fn(root);
  const source = `"use strict";\n${functions.join("\n")}\nreturn ${entry};`;
  return new Function("need", "u32", "XdrCorruptError", source)(need, u32, XdrCorruptError);
}

const compiled = new Map<Node, Skipper>();

function skipperFor(node: Node): Skipper {
  const s = resolve(node);
  let f = compiled.get(s);
  if (!f) compiled.set(s, f = generate(s));
  return f;
}

/** A compiled skipper for one of the SDK's XDR classes, e.g. `skipper(xdr.LedgerCloseMeta)`. */
export function skipper(type: { readonly schema: unknown }): Skipper {
  return skipperFor(type.schema as Node);
}

/** Skippers for each field of a struct class, in wire order, keyed by field name. */
export function fieldSkippers(type: { readonly schema: unknown }): Map<string, Skipper> {
  const s = type.schema as Node;
  if (s.kind !== "struct") throw new Error(`xdr_skip: ${s.name} is not a struct`);
  return new Map(s.entries!.map(([name, f]) => [name, skipperFor(f)]));
}

export { u32 as readU32 };

// Re-exported so callers name types through one import.
export { xdr };
