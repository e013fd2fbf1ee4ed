// Imported first by main.ts: a dependency of the cloud SDKs uses node's deprecated punycode
// module, and its one-time warning on stderr would read as a bronze problem to users.
import process from "node:process";
process.noDeprecation = true;
