/**
 * The one resolver: a command's settings from its flags, else the environment, else the defaults,
 * then its declared rules and probes (COMMANDS). Every problem is collected and thrown together as
 * one ConfigError, so a user fixes a bad invocation in one go rather than one error per run.
 */
import { ConfigError } from "../runtime/errors.ts";
import {
  type CommandName,
  COMMANDS,
  type CommandSettings,
  type SettingsOf,
  specOf,
} from "./commands.ts";
import { Invalid } from "./parsers.ts";
import type { Located, Probe } from "./probe.ts";
import type { Key, Settings } from "./settings.ts";
import { SPECS } from "./specs.ts";
import { unknownProblems } from "./_unknown.ts";

/** Flag values as commander parsed them, keyed by its camelCase option names. */
export type Flags = Record<string, string | boolean | undefined>;

/** commander's camelCase option name for a setting's flag ("--state-dir" -> "stateDir"). */
export function optionName(key: Key): string {
  // commander keeps `--no-x` as `x`: true unless the flag is given, then false.
  const flag = SPECS[key].flag.replace(/^--no-/, "--");
  return flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Command `name`'s settings from `flags` (by commander's option names), then `env`, then the
 * defaults; `unknown` are the command-line words commander did not recognise. Throws one
 * ConfigError listing every problem.
 */
export function resolveSettings<C extends CommandName>(
  name: C,
  flags: Flags,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  unknown: readonly string[] = [],
): SettingsOf<C> {
  const command = COMMANDS[name] as CommandSettings<Key, Key, unknown>;
  const keys = command.settings;
  const problems = unknownProblems([...new Set(keys.map((k) => SPECS[k].flag))], unknown);
  const out: Partial<Record<Key, unknown>> = {};
  const origins: Partial<Record<Key, string>> = {};
  const invalid = new Set<Key>();
  for (const key of keys) {
    const spec = specOf(name, key);
    const given = flags[optionName(key)];
    // A negated flag (--no-record) is the setting true when given, commander's false.
    const flagValue = spec.flag.startsWith("--no-") ? (given === false ? true : undefined) : given;
    let raw: string | undefined;
    let origin = spec.flag;
    if (typeof flagValue === "boolean") raw = String(flagValue);
    else if (flagValue !== undefined) raw = flagValue;
    else if (spec.env && env(spec.env) !== undefined) {
      raw = env(spec.env);
      origin = spec.env;
    }
    if (raw === undefined) {
      origins[key] = spec.env ? `${spec.flag} (${spec.env})` : spec.flag;
      if (!spec.default && command.required?.includes(key)) {
        problems.push(`${origins[key]} is required`);
      }
      continue;
    }
    origins[key] = origin;
    const parsed = spec.parse(raw);
    if (parsed instanceof Invalid) {
      problems.push(`${origin} ${parsed.message}`);
      invalid.add(key);
    } else out[key] = parsed;
  }
  const resolved = out as Partial<Settings>;
  // Defaults once every given value is in: some read another setting (the checkpoint's its state
  // dir), whose default comes first.
  const late = (k: Key) => (specOf(name, k).after ? 1 : 0);
  for (const key of [...keys].sort((a, b) => late(a) - late(b))) {
    const spec = specOf(name, key);
    if (!(key in out) && !invalid.has(key) && spec.default) out[key] = spec.default(resolved);
  }
  const origin = (k: Key) => origins[k] ?? SPECS[k].flag;
  for (const rule of command.rules ?? []) {
    if (rule.keys.some((k) => invalid.has(k))) continue;
    const problem = rule.check(resolved, origin);
    if (problem) problems.push(problem);
  }
  for (const [key, probe] of Object.entries(command.probes ?? {}) as [Key, Probe][]) {
    const value = out[key];
    const problem = value === undefined ? undefined : probe(value as Located);
    if (problem) problems.push(`${origin(key)} ${problem}`);
  }
  if (problems.length) throw new ConfigError(problems);
  return out as SettingsOf<C>;
}
