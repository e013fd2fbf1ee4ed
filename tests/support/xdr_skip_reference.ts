/**
 * The reference for lib/source/xdr_skip.ts (tests/source/xdr_skip_test.ts): the first, plain
 * implementation of the same walk, one closure per schema node. It is slow (megamorphic calls on
 * every field) but short enough to read as the specification; the generated skipper must agree
 * with it on every input, its errors included.
 */
import { XdrCorruptError } from "../../lib/source/_xdr.ts";

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

const compiled = new Map<Node, Skipper>();

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

/** Size in bytes when every value of the schema encodes to the same length, else -1. */
function fixedSize(s: Node, seen = new Set<Node>()): number {
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
    case "field":
      return fixedSize(s.schema!, seen);
    default:
      return -1;
  }
}

function fixed(n: number): Skipper {
  return (view, off) => {
    need(view, off, n);
    return off + n;
  };
}

function build(s: Node): Skipper {
  const size = fixedSize(s);
  if (size >= 0) return fixed(size);
  switch (s.kind) {
    case "string":
    case "varOpaque": {
      const max = s.maxLength!;
      return (view, off) => {
        const len = u32(view, off);
        if (len > max) throw new XdrCorruptError(`opaque length ${len} exceeds ${max}`, off);
        need(view, off + 4, pad4(len));
        return off + 4 + pad4(len);
      };
    }
    case "option": {
      const el = skipperFor(s.element!);
      return (view, off) => {
        const present = u32(view, off);
        if (present === 0) return off + 4;
        if (present !== 1) throw new XdrCorruptError(`bad optional flag ${present}`, off);
        return el(view, off + 4);
      };
    }
    case "array": {
      const max = s.maxLength!;
      const elSize = fixedSize(s.element!);
      if (elSize >= 0) {
        return (view, off) => {
          const n = u32(view, off);
          if (n > max) throw new XdrCorruptError(`array length ${n} exceeds ${max}`, off);
          need(view, off + 4, n * elSize);
          return off + 4 + n * elSize;
        };
      }
      const el = skipperFor(s.element!);
      return (view, off) => {
        const n = u32(view, off);
        if (n > max) throw new XdrCorruptError(`array length ${n} exceeds ${max}`, off);
        // Every element takes at least 4 bytes: a corrupt count fails here, not after a long walk.
        need(view, off + 4, n * 4);
        off += 4;
        for (let i = 0; i < n; i++) off = el(view, off);
        return off;
      };
    }
    case "fixedArray": {
      const n = s.length!;
      const el = skipperFor(s.element!);
      return (view, off) => {
        for (let i = 0; i < n; i++) off = el(view, off);
        return off;
      };
    }
    case "struct": {
      const fields = s.entries!.map(([, f]) => skipperFor(f));
      return (view, off) => {
        for (let i = 0; i < fields.length; i++) off = fields[i](view, off);
        return off;
      };
    }
    case "union": {
      const sw = s.switchOn!;
      const arms = new Map<number, Skipper>();
      for (const c of s.cases!) {
        const d = typeof c.discriminant === "boolean" ? Number(c.discriminant) : c.discriminant;
        arms.set(d as number, armSkipper(c.arm));
      }
      const dflt = s.defaultArm ? armSkipper(s.defaultArm) : undefined;
      const signed = sw.kind === "int32" || sw.kind === "enum";
      const name = s.name ?? "union";
      return (view, off) => {
        need(view, off, 4);
        const d = signed ? view.getInt32(off) : view.getUint32(off);
        const arm = arms.get(d) ?? dflt;
        if (!arm) throw new XdrCorruptError(`unknown ${name} discriminant ${d}`, off);
        return arm(view, off + 4);
      };
    }
    case "lazy": {
      let target: Skipper | undefined;
      return (view, off) => (target ??= skipperFor(s.getSchema!()))(view, off);
    }
    default:
      throw new Error(`xdr_skip: unsupported schema kind ${s.kind}`);
  }
}

function armSkipper(arm: Node): Skipper {
  return arm.kind === "field" ? skipperFor(arm.schema!) : skipperFor(arm);
}

function skipperFor(s: Node): Skipper {
  let f = compiled.get(s);
  if (f) return f;
  // Recursive types (SCVal holds SCVal) reach themselves while compiling: hand out a trampoline.
  const slot: { impl?: Skipper } = {};
  compiled.set(s, (view, off) => slot.impl!(view, off));
  f = slot.impl = build(s);
  compiled.set(s, f);
  return f;
}

/** A compiled skipper for one of the SDK's XDR classes, e.g. `skipper(xdr.LedgerCloseMeta)`. */
export function skipper(type: { readonly schema: unknown }): Skipper {
  return skipperFor(type.schema as Node);
}
