/** The Stellar networks bronze knows, and the passphrase each one signs with. */
import { BronzeError } from "../runtime/errors.ts";

export type Network = "pubnet" | "testnet" | "futurenet";

export const NETWORKS: readonly Network[] = ["pubnet", "testnet", "futurenet"];

export const PASSPHRASES: Readonly<Record<Network, string>> = {
  pubnet: "Public Global Stellar Network ; September 2015",
  testnet: "Test SDF Network ; September 2015",
  futurenet: "Test SDF Future Network ; October 2022",
};

export function isNetwork(value: string): value is Network {
  return (NETWORKS as readonly string[]).includes(value);
}

/** Parses a user-supplied network name; `what` names where it came from (a flag, a file). */
export function parseNetwork(value: string, what = "network"): Network {
  if (isNetwork(value)) return value;
  throw new BronzeError(
    `${what}: unknown network ${JSON.stringify(value)} (expected ${NETWORKS.join(", ")})`,
  );
}

export function passphraseOf(network: Network): string {
  return PASSPHRASES[network];
}
