/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: counters, gauges and
 * histograms with labels are all a copier needs, and the format is a page long, so it costs the
 * binary no dependency (prom-client brings three more packages and ~4.7 MB of files with it).
 *
 * Output is deterministic: families in the order they were registered, series in the order they
 * first appeared, `le` last among a bucket's labels (as the Go client writes it). A family with no
 * series yet is left out, HELP and TYPE included.
 */

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A series' label values, by label name: exactly the family's label names, no more, no less. */
export type Labels<L extends string> = Readonly<Record<L, string>>;

export class Registry {
  readonly #families: Family<string, unknown>[] = [];

  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return this.#add(new Counter(name, help, labelNames));
  }

  gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
    return this.#add(new Gauge(name, help, labelNames));
  }

  /** `buckets`: the finite upper bounds, strictly increasing; `+Inf` is always added. */
  histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: readonly number[],
  ): Histogram<L> {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** The whole exposition, ending in a newline (empty when no family has a series). */
  render(): string {
    return this.#families.map((f) => f.render()).join("");
  }

  #add<F extends Family<string, unknown>>(family: F): F {
    if (this.#families.some((f) => f.name === family.name)) {
      throw new Error(`metric ${family.name} is registered twice`);
    }
    this.#families.push(family);
    return family;
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

abstract class Family<L extends string, S> {
  abstract readonly type: "counter" | "gauge" | "histogram";
  readonly #series = new Map<string, { labels: string; state: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
  ) {
    // Misnamed metrics are a programming error, caught by the first test that builds them.
    if (!METRIC_NAME.test(name)) throw new Error(`bad metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith("__")) {
        throw new Error(`bad label name ${JSON.stringify(l)} on ${name}`);
      }
    }
    if (new Set(labelNames).size !== labelNames.length) {
      throw new Error(`repeated label name on ${name}`);
    }
  }

  /** Creates the series at zero so it is exported before its first event (rate() needs that). */
  init(labels: Labels<L>): void {
    this.series(labels);
  }

  protected abstract fresh(): S;
  /** Sample lines of one series; `labels` is its rendered `k="v",...` list, possibly empty. */
  protected abstract samples(labels: string, state: S): string[];

  protected series(labels: Labels<L>): S {
    const given = Object.keys(labels);
    if (given.length !== this.labelNames.length || !this.labelNames.every((n) => n in labels)) {
      throw new Error(
        `${this.name} takes labels ${this.labelNames.join(", ")}, got ${given.join(", ")}`,
      );
    }
    const rendered = this.labelNames.map((n) => `${n}="${_escapeLabel(labels[n])}"`).join(",");
    let s = this.#series.get(rendered);
    if (!s) {
      s = { labels: rendered, state: this.fresh() };
      this.#series.set(rendered, s);
    }
    return s.state;
  }

  render(): string {
    if (this.#series.size === 0) return "";
    const lines = [
      `# HELP ${this.name} ${_escapeHelp(this.help)}`,
      `# TYPE ${this.name} ${this.type}`,
    ];
    for (const s of this.#series.values()) lines.push(...this.samples(s.labels, s.state));
    return lines.join("\n") + "\n";
  }
}

export class Counter<L extends string> extends Family<L, { value: number }> {
  readonly type = "counter";

  inc(labels: Labels<L>, by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) {
      throw new Error(`${this.name} can only grow by a finite amount >= 0, got ${by}`);
    }
    this.series(labels).value += by;
  }

  protected fresh() {
    return { value: 0 };
  }

  protected samples(labels: string, s: { value: number }): string[] {
    return [_sample(this.name, labels, s.value)];
  }
}

export class Gauge<L extends string> extends Family<L, { value: number }> {
  readonly type = "gauge";

  set(labels: Labels<L>, value: number): void {
    this.series(labels).value = value;
  }

  protected fresh() {
    return { value: 0 };
  }

  protected samples(labels: string, s: { value: number }): string[] {
    return [_sample(this.name, labels, s.value)];
  }
}

interface HistogramState {
  /** Observations per bucket, not cumulative; the last one is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string> extends Family<L, HistogramState> {
  readonly type = "histogram";
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly L[], buckets: readonly number[]) {
    super(name, help, labelNames);
    if (labelNames.includes("le" as L)) throw new Error(`histogram ${name} cannot have label le`);
    const finite = buckets.filter((b) => b !== Infinity);
    if (!finite.length || finite.some((b, i) => !Number.isFinite(b) || (i && b <= finite[i - 1]))) {
      throw new Error(`histogram ${name} needs finite, strictly increasing buckets`);
    }
    this.buckets = [...finite, Infinity];
  }

  observe(labels: Labels<L>, value: number): void {
    const s = this.series(labels);
    s.counts[this.buckets.findIndex((b) => value <= b)]++;
    s.sum += value;
    s.count++;
  }

  protected fresh(): HistogramState {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  protected samples(labels: string, s: HistogramState): string[] {
    const sep = labels ? "," : "";
    let cumulative = 0;
    const out = this.buckets.map((b, i) => {
      cumulative += s.counts[i];
      return _sample(`${this.name}_bucket`, `${labels}${sep}le="${_number(b)}"`, cumulative);
    });
    out.push(_sample(`${this.name}_sum`, labels, s.sum));
    out.push(_sample(`${this.name}_count`, labels, s.count));
    return out;
  }
}

function _sample(name: string, labels: string, value: number): string {
  return `${name}${labels ? `{${labels}}` : ""} ${_number(value)}`;
}

/** Go's strconv.ParseFloat reads JavaScript's shortest round-trip form; only the infinities differ. */
function _number(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function _escapeHelp(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function _escapeLabel(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}
