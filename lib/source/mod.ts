/**
 * Opens the ledger source a URL names: a Stellar RPC node on `rpc+https://` or `rpc+http://`, else
 * a Galexie lake on a path, file://, gs:// or s3://.
 */
import { openStore } from "../blob/mod.ts";
import { openLake } from "./lake.ts";
import type { Network } from "./network.ts";
import { isRpcUrl, openRpc } from "./rpc.ts";
import type { LedgerSource } from "./source.ts";

export type { LedgerSource, RawLedger, SourceType, StreamOptions } from "./source.ts";

export async function openSource(url: string, network: Network): Promise<LedgerSource> {
  if (isRpcUrl(url)) return await openRpc(url, network);
  return await openLake(openStore(url), network);
}
