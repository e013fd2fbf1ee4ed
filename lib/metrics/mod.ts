/**
 * Metrics and health of a long-running copier (`--metrics-addr`): the copy loop feeds a
 * CopierMetrics; serveMetrics exposes it over HTTP.
 */
export {
  COMMIT_SECONDS_BUCKETS,
  type Committed,
  CopierMetrics,
  type DatasetLabels,
  ERROR_KINDS,
  type ErrorKind,
} from "./metrics.ts";
export { Health, type HealthOptions, type HealthStatus } from "./health.ts";
export {
  type ListenAddress,
  type MetricsServer,
  parseListenAddress,
  serveMetrics,
} from "./server.ts";
