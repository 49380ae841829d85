// Runs before the project's own modules: the globals the JS engine has that workerd does not,
// removed, so that a library that feature-tests them (lib0, and so every Yjs app, reads
// `location.search` at load when `location` exists) behaves as on Cloudflare; and workerd's own
// globals the engine lacks or gets wrong, added or fixed (`scheduler`, `AbortSignal`); and the
// platform's work in flight counted (`inflight.js`). `crypto.subtle`'s missing algorithms
// (`webcrypto.js`) are added by the build, to bundles that use `crypto.subtle`.

import "./abort.js";
import { trackPlatform } from "./inflight.js";
import "./scheduler.js";

trackPlatform();

for (const name of ["location"]) {
  try {
    delete globalThis[name];
  } catch {
    // Not configurable: hide it behind an own property instead.
  }
  if (name in globalThis) {
    try {
      Object.defineProperty(globalThis, name, { value: undefined, configurable: true, writable: true });
    } catch {
      // Left as the engine made it.
    }
  }
}
