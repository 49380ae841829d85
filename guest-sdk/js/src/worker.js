// A worker in JavaScript: the module's default export (`export default app` of a Hono app, or
// `export default { fetch(request, env, ctx) }`) handles every ingress request, with the deploy
// config's bindings as `env`.

import { env } from "./namespaces.js";
import { toRequest, fromResponse, errorResponse } from "./http.js";

/** `ctx` of a worker's fetch. */
const context = {
  waitUntil(promise) {
    Promise.resolve(promise).catch((error) => console.error(`waitUntil: ${error}`));
  },
  passThroughOnException() {},
};

/** The component's `fetch` export for `module`'s default export. */
export function workerExports(module) {
  const handler = module.default;
  return {
    async fetch(request) {
      try {
        if (!handler || typeof handler.fetch !== "function") {
          throw new Error("the worker module has no default export with a fetch method");
        }
        return await fromResponse(await handler.fetch(toRequest(request), env, context));
      } catch (error) {
        return errorResponse("fetch", error);
      }
    },
  };
}
