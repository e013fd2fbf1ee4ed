/**
 * Every setting of every command, validated in one place (graphile-migrate's settings.ts is the
 * anchor): settings.ts says what the settings are, parsers.ts parses a value, specs.ts says where
 * each setting comes from (the dataset filters': filters.ts), commands.ts declares each command's
 * settings and rules, resolve.ts applies them, every problem at once.
 */
export { type CommandName, COMMANDS, type SettingsOf, specOf } from "./commands.ts";
export { DATASET_FILTERS, datasetFilterOf } from "./filters.ts";
export { type Flags, optionName, resolveSettings } from "./resolve.ts";
export type { Key, Settings, Spec } from "./settings.ts";
export { SPECS } from "./specs.ts";
