/**
 * Whether a claim session's connection still reaches the catalog, from the copier's side. Private
 * to lib/metadata/ (claims.ts).
 */
import type pg from "pg";
import { AttemptTimeoutError } from "../runtime/transient.ts";

/**
 * TCP keepalive barely helps a client (over 11 minutes to notice), so a heartbeat on the claiming
 * connection notices a dead link within every + deadline, well before the server lets the claims
 * go, and the copier stops building what it may no longer commit (or reconnects).
 */
export const HEARTBEAT = { everyMs: 5_000, deadlineMs: 15_000 };

/**
 * One heartbeat on `client`: an answer within the deadline, or `lose` is told why (the cause a
 * deadline, transient: the session may reconnect) and the connection is destroyed.
 */
export async function heartbeat(
  client: pg.PoolClient,
  lose: (why: string, cause: unknown) => void,
): Promise<void> {
  const deadline = setTimeout(() => {
    lose(
      `the catalog did not answer within ${HEARTBEAT.deadlineMs / 1000}s`,
      new AttemptTimeoutError(HEARTBEAT.deadlineMs),
    );
    // A dead link would otherwise hold the connection for ~15 minutes of retransmits.
    (client as unknown as { connection?: { stream?: { destroy(): void } } })
      .connection?.stream?.destroy();
  }, HEARTBEAT.deadlineMs);
  try {
    await client.query("SELECT 1");
  } finally {
    clearTimeout(deadline);
  }
}
