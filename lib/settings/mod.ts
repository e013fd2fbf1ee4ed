/**
 * Every setting of every command, validated in one place (graphile-migrate's settings.ts is the
 * anchor): parsers.ts parses a value, specs.ts says where each setting comes from, commands.ts
 * declares each command's settings and rules, resolve.ts applies them, every problem at once.
 */
export { type CommandName, COMMANDS, type SettingsOf, specOf } from "./commands.ts";
export { DATASET_FILTERS, datasetFilterOf } from "./filters.ts";
export { type Flags, optionName, resolveSettings } from "./resolve.ts";
export { type Key, type Settings, type Spec, SPECS } from "./specs.ts";
