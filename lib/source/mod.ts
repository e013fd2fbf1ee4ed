/**
 * Opens the ledger source a URL names: a Stellar RPC node on `rpc+https://` or `rpc+http://`, else
 * a Galexie lake on a path, file://, gs:// or s3://.
 */
import { openStore } from "../blob/mod.ts";
import type { Retrier } from "../runtime/retry.ts";
import { openLake } from "./lake.ts";
import type { Network } from "./network.ts";
import { openRpc } from "./rpc.ts";
import type { LedgerSource } from "./source.ts";
import { isRpcUrl, type SourceUrl, toSourceUrl } from "./url.ts";

export type { LedgerSource, RawLedger, SourceType, StreamOptions } from "./source.ts";

export { isRpcUrl, parseSourceUrl, type RpcUrl, type SourceUrl, toSourceUrl } from "./url.ts";

/**
 * The source `url` names, parsed by the settings (or here, for a URL from elsewhere); `retry`: the
 * run's retry policy and listener (default: the default policy, told to nobody).
 */
export async function openSource(
  url: string | SourceUrl,
  network: Network,
  retry?: Retrier,
): Promise<LedgerSource> {
  const parsed = toSourceUrl(url);
  if (isRpcUrl(parsed)) return await openRpc(parsed, network, { retry });
  return await openLake(openStore(parsed, { area: "source", retry }), network);
}
