/**
 * Lets the GCS client library notice an answer whose connection dropped midway.
 *
 * The library reads every answer through node-fetch 2, which hands the HTTP response on with
 * `res.pipe(body)`. `pipe` does not pass the source's errors on, so when the connection drops
 * before the announced length has arrived (`IncomingMessage` emits ECONNRESET "aborted", under
 * Node and Deno alike) `body` neither ends nor fails: the download, metadata read or listing
 * waits until our attempt deadline abandons it (30 s by default, for every cut answer). Here a
 * response piped on that fails destroys what it was piped into with its error, as
 * `stream.pipeline` would; the library then fails the call with that ECONNRESET, and the retry
 * policy retries it at once.
 *
 * Applied once, when the GCS library is first loaded (runs without GCS are untouched), to every
 * response of the process. Only the failure path changes, and only for a destination that has an
 * error listener and is neither ended nor destroyed: an error nobody hears would be uncaught.
 */
import { IncomingMessage } from "node:http";
import type { Writable } from "node:stream";

let applied = false;

export function passCutAnswersOn(): void {
  if (applied) return;
  applied = true;
  const pipe = IncomingMessage.prototype.pipe;
  IncomingMessage.prototype.pipe = function (this: IncomingMessage, destination, options) {
    const piped = pipe.call(this, destination, options);
    const to = destination as unknown as Writable;
    this.once("error", (err) => {
      // Only into a stream someone hears: node-fetch pipes a compressed answer through a bare
      // PassThrough first, whose error nobody listens to (that case keeps the deadline).
      if (!to.destroyed && !to.writableEnded && to.listenerCount("error") > 0) to.destroy(err);
    });
    return piped;
  } as typeof pipe;
}
