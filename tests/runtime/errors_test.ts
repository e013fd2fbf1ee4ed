/**
 * The machine's refusals as one line naming the path and what to do (exit 74), whatever layer met
 * them: Deno's and Node's errors carry a `code`, WebAssembly programs (PGlite) an Emscripten
 * ErrnoError with WASI's numbers. Real ENOSPC and EROFS are met end to end in
 * tests/cli/environment_test.ts; here, every code and its message.
 */
import assert from "node:assert/strict";
import { BronzeError, environmentError, EXIT, fsError } from "../../lib/runtime/errors.ts";

const coded = (code: string) => Object.assign(new Error(`${code} (os error)`), { code });

Deno.test("environmentError: each refusal is one line naming the path and what to do, exit 74", () => {
  const where = { path: "/data/x/part-1-100.parquet", writing: true };
  const cases: [unknown, string][] = [
    [
      coded("ENOSPC"),
      "/data/x/part-1-100.parquet: no space left on device: free space there and run again (the run resumes where it stopped)",
    ],
    [
      coded("EDQUOT"),
      "/data/x/part-1-100.parquet: disk quota exceeded: free space or raise the quota and run again (the run resumes where it stopped)",
    ],
    [
      coded("EACCES"),
      "folder /data/x is not writable (permission denied): give this user write access to it and run again",
    ],
    [
      coded("EPERM"),
      "folder /data/x is not writable (permission denied): give this user write access to it and run again",
    ],
    [
      coded("EROFS"),
      "folder /data/x is not writable (read-only file system): mount it read-write or choose another location, and run again",
    ],
    [
      coded("EMFILE"),
      "/data/x/part-1-100.parquet: too many open files: raise the limit (ulimit -n, LimitNOFILE=) and run again",
    ],
    [
      coded("ENFILE"),
      "/data/x/part-1-100.parquet: too many open files: raise the limit (ulimit -n, LimitNOFILE=) and run again",
    ],
    // PGlite's: WASI's ENOSPC (51) and EROFS (69).
    [
      { name: "ErrnoError", errno: 51 },
      "/data/x/part-1-100.parquet: no space left on device: free space there and run again (the run resumes where it stopped)",
    ],
    [
      { name: "ErrnoError", errno: 69 },
      "folder /data/x is not writable (read-only file system): mount it read-write or choose another location, and run again",
    ],
  ];
  for (const [err, message] of cases) {
    const e = environmentError(err, where);
    assert.ok(e instanceof BronzeError, message);
    assert.equal(e.exitCode, EXIT.io);
    assert.equal(e.exitCode, 74);
    assert.equal(e.message, message);
    assert.equal((e as { cause?: unknown }).cause, err);
  }
  // Reading: the file itself is named, not its folder.
  assert.equal(
    environmentError(coded("EACCES"), { path: "/lake/a.xdr.zst" })!.message,
    "/lake/a.xdr.zst: permission denied: give this user read access to it and run again",
  );
});

Deno.test("environmentError: anything else is not the machine's refusal (null); fsError passes it on", () => {
  for (
    const err of [coded("ENOENT"), coded("ECONNRESET"), new TypeError("a bug"), {
      name: "ErrnoError",
      errno: 44,
    }, undefined]
  ) {
    assert.equal(environmentError(err, { path: "/x" }), null);
    assert.equal(fsError(err, { path: "/x" }), err);
  }
  const ours = new BronzeError("already one line");
  assert.equal(environmentError(ours, { path: "/x" }), null, "a BronzeError says what it means");
});
