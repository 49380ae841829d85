// The globals `nodejs_compat` gives on Cloudflare: `Buffer`, `process` and `global`. The build
// injects this module (esbuild's `inject`), so code that uses them unimported gets these.

import { Buffer } from "node:buffer";
import process from "node:process";

globalThis.Buffer ??= Buffer;
globalThis.process ??= process;
globalThis.global ??= globalThis;

const global = globalThis;
export { Buffer, global, process };
