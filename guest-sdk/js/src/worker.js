// A worker in JavaScript: the module's default export (`export default app` of a Hono app, or
// `export default { fetch(request, env, ctx) }`) handles every ingress request, with the deploy
// config's bindings as `env`.

import * as timers from "duro:object/timers@0.1.0";
import { env, exports } from "./namespaces.js";
import { toRequest, fromResponse, errorResponse } from "./http.js";
import { waitUntilOutside } from "./timers.js";
import { logged } from "./errors.js";

/** `ctx.waitUntil` promises not yet settled. */
const pending = new Set();

/** Keeps `promise` running after the response (its failure logged). */
function keep(promise) {
  const tracked = Promise.resolve(promise).then(
    () => undefined,
    (error) => console.error(`waitUntil: ${logged(error)}`),
  );
  pending.add(tracked);
  tracked.then(() => pending.delete(tracked));
}
waitUntilOutside(keep);

/**
 * `ctx` of a worker's fetch. `waitUntil(promise)` keeps the promise running after the response:
 * the runtime then calls `wake` on this instance, which returns once such work has settled.
 */
const context = {
  waitUntil: keep,
  passThroughOnException() {},
  exports,
};

/**
 * Cloudflare's class-based worker: `export default class extends WorkerEntrypoint { fetch(request)
 * { … } }`, with `this.env` and `this.ctx`; one instance per request.
 */
export class WorkerEntrypoint {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}

/** The handler of one request: the default export, or an instance of its class. */
function handlerOf(exported) {
  if (typeof exported === "function" && exported.prototype instanceof WorkerEntrypoint) {
    return new exported(context, env);
  }
  return exported;
}

/** The component's `fetch` export for `module`'s default export. */
export function workerExports(module) {
  return {
    async fetch(request) {
      try {
        const handler = handlerOf(module.default);
        if (!handler || typeof handler.fetch !== "function") {
          throw new Error("the worker module has no default export with a fetch method");
        }
        return await fromResponse(await handler.fetch(toRequest(request), env, context));
      } catch (error) {
        return errorResponse("fetch", error);
      } finally {
        if (pending.size > 0) timers.wakeAfter(0n);
      }
    },
    /** After the response: the work the request left, until it settles. */
    async wake() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}
