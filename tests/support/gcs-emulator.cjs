// Starts firebase-tools' Cloud Storage emulator without `firebase emulators:start`, which needs
// Java 21 and a download for its Security Rules runtime. The GCS JSON API routes (the ones
// @google-cloud/storage uses) go through the emulator's admin storage layer, which never consults
// rules, so we skip starting the rules runtime altogether.
//
//   node gcs-emulator.cjs <dir holding node_modules/firebase-tools>
//
// Listens on 127.0.0.1 with an ephemeral port, prints `{"port":N}` on one stdout line once ready,
// and exits (removing its blobs) on SIGTERM/SIGINT or when stdin closes. Set TMPDIR per instance:
// the emulator keeps blobs under os.tmpdir() and deletes that folder when it stops.
"use strict";
const path = require("node:path");
const { once } = require("node:events");

const lib = path.resolve(process.argv[2], "node_modules/firebase-tools/lib");
const { StorageEmulator } = require(path.join(lib, "emulator/storage/index.js"));
const { createApp } = require(path.join(lib, "emulator/storage/server.js"));
const { EmulatorRegistry } = require(path.join(lib, "emulator/registry.js"));

class RulelessStorageEmulator extends StorageEmulator {
  async start() {
    this._app = await createApp(this.args.projectId, this);
    const server = this._app.listen(0, "127.0.0.1");
    await once(server, "listening");
    this.server = server;
    this.args.port = server.address().port; // getInfo() reads it; metadata links are built from it
  }

  async stop() {
    await new Promise((resolve) => this.server.close(resolve));
    this.server.closeAllConnections?.();
    await this._persistence.deleteAll();
  }
}

async function main() {
  // An empty resource-based rules list: the rules manager then has nothing to load or watch.
  const emulator = new RulelessStorageEmulator({
    host: "127.0.0.1",
    projectId: "bronze-test",
    rules: [],
  });
  await emulator.start();
  EmulatorRegistry.set(emulator.getName(), emulator);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await emulator.stop();
    } finally {
      process.exit(0);
    }
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.resume();
  process.stdout.write(JSON.stringify({ port: emulator.getInfo().port }) + "\n");
}

main().catch((e) => {
  process.stderr.write(`gcs emulator failed to start: ${e?.stack ?? e}\n`);
  process.exit(1);
});
