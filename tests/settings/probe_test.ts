import assert from "node:assert/strict";
import { join } from "node:path";
import {
  existingDir,
  lakeDir,
  localPath,
  writableDir,
  writableFile,
} from "../../lib/settings/probe.ts";
import { tempDir } from "../support/lakes.ts";
import { parseObjectUrl, parseStoreUrl, type UrlProblem } from "../../lib/blob/url.ts";
import { parseSourceUrl } from "../../lib/source/url.ts";

Deno.test("probes: a file where a directory must be, an unwritable place, a lake without .config.json; nothing is created", async () => {
  await using dir = await tempDir();
  const afile = join(dir.path, "afile");
  await Deno.writeTextFile(afile, "x");
  assert.equal(
    writableDir(join(afile, "sub")),
    `${afile}/sub: cannot create the directory: ${afile} is not a directory`,
  );
  assert.equal(writableDir(afile), `${afile}: not a directory`);
  assert.equal(
    writableDir("/proc/nope"),
    "/proc/nope: cannot create the directory: cannot write in /proc: No such file or directory",
  );
  assert.equal(
    writableFile(join(afile, "ck.json")),
    `${afile}/ck.json: ${afile} is not a directory`,
  );
  assert.equal(writableFile(dir.path), `${dir.path}: is a directory, not a file`);
  assert.equal(lakeDir(afile), `${afile}: not a directory (expected a Galexie data lake)`);
  assert.equal(lakeDir(dir.path), `${dir.path}: not a Galexie data lake (no .config.json in it)`);
  assert.equal(
    existingDir(join(dir.path, "none")),
    `${dir.path}/none: No such file or directory`,
  );
  // Fine paths pass, and probing made nothing: not the missing directories, not a probe file.
  assert.equal(writableDir(join(dir.path, "a", "b")), undefined);
  assert.equal(writableFile(join(dir.path, "c", "ck.json")), undefined);
  assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name), ["afile"]);
});

Deno.test("localPath: a path or file:// is local; buckets, objects in them and RPC nodes are not", () => {
  const parsed = <T>(v: T | UrlProblem) => {
    assert.ok(!(v && typeof v === "object" && "problem" in v), JSON.stringify(v));
    return v as T;
  };
  assert.equal(localPath("./state"), "./state");
  assert.equal(localPath(parsed(parseStoreUrl("./data"))), "./data");
  assert.equal(localPath(parsed(parseStoreUrl("file:///var/bronze%20data"))), "/var/bronze data");
  assert.equal(localPath(parsed(parseStoreUrl("gs://b/p"))), null);
  assert.equal(localPath(parsed(parseStoreUrl("s3://b"))), null);
  assert.equal(localPath(parsed(parseObjectUrl("./state/ck.json"))), "./state/ck.json");
  assert.equal(localPath(parsed(parseObjectUrl("s3://b/state/ck.json"))), null);
  assert.equal(localPath(parsed(parseSourceUrl("rpc+https://rpc.example.org"))), null);
});
