// `env.COUNTER` and friends: Durable Object namespaces over the `duro:object/namespaces` import,
// and the deploy config's vars and secrets (`env.GREETING`, a string) over `duro:object/env`, for
// workers and objects alike. A name that is a var or secret gives its value; a bound name its
// namespace; any other name is undefined, as on Cloudflare. The static assets' binding (`assets.binding`, e.g. `env.ASSETS`) is a
// fetcher over `duro:object/assets`.

import * as raw from "duro:object/namespaces@0.1.0";
import * as vars from "duro:object/env@0.1.0";
import * as assets from "duro:object/assets@0.1.0";
import { lift } from "./errors.js";
import { fromRequest, thrownBy, toResponse } from "./http.js";
import { withMethods } from "./rpc.js";
import { waitOnRuntime } from "./inflight.js";

function call(f) {
  return lift("call", f);
}

/** Whether calls leave without holding the caller (objects: the runtime's `start-*`), so that
 * its other events, a call back to it included, run while it waits — as on Cloudflare. */
let startCalls = false;
/** Keeps a started call running after its event (the object's background work). */
let keepUntilSettled = () => {};

/** Objects start their calls, and `keep` each as background work of the running event's object
 * (a call not awaited still ends). A worker keeps the synchronous calls: nothing calls back to
 * it (and its bundle stays without the objects' modules). */
export function startCallsWithoutWaiting(keep) {
  startCalls = true;
  keepUntilSettled = keep;
}

/** A call started with `start()`: its answer, taken with `finish(id)` once the runtime says it
 * is there. */
function started(start, finish) {
  const id = call(start);
  const answer = waitOnRuntime(`http://call.duro.invalid/${id}`).then(() => call(() => finish(id)));
  keepUntilSettled(answer); // a call the handler does not await still ends
  return answer;
}

/** Whether a request (as the runtime takes it) asks for a WebSocket: those keep the synchronous
 * call, which hands the socket over. */
function isUpgrade(request) {
  return request.headers.some(([name, value]) => name.toLowerCase() === "upgrade" && value.toLowerCase() === "websocket");
}

/** An object's id: `toString()` is the 64-hex id; `name` is set for ids made from a name. */
export class DurableObjectId {
  #hex;
  constructor(hex, name) {
    this.#hex = hex;
    this.name = name;
  }
  toString() {
    return this.#hex;
  }
  toJSON() {
    return this.#hex;
  }
  equals(other) {
    return other instanceof DurableObjectId && other.#hex === this.#hex;
  }
}

/**
 * A client for one object: `fetch` delivers a request to the object's `fetch`, and any other
 * method name is an RPC call of the class's method (`await stub.sayHello("world")`).
 */
export class DurableObjectStub {
  #stub;
  constructor(stub, id) {
    this.#stub = stub;
    this.id = id;
    this.name = id.name;
    return withMethods(this, (method, args) =>
      startCalls ? started(() => stub.startCall(method, args), raw.finishCall) : call(() => stub.call(method, args)),
    );
  }
  /** Takes what `fetch` takes (`"http://do/path"`, a Request, init); answers a Response, or
   * rejects with what the object's `fetch` threw (`remote` set), as on Cloudflare. */
  async fetch(input, init) {
    const request = await fromRequest(input, init);
    const response =
      startCalls && !isUpgrade(request)
        ? await started(() => this.#stub.startFetch(request), raw.finishFetch)
        : call(() => this.#stub.fetch(request));
    const error = thrownBy(response);
    if (error !== undefined) throw error;
    return toResponse(response);
  }
}

/** `env.ASSETS`: the static assets, fetched by path as the ingress serves them. */
export class AssetsFetcher {
  /** Takes what `fetch` takes (only the URL's path and query matter); answers a Response. */
  async fetch(input, init) {
    const request = await fromRequest(input, init);
    return toResponse(assets.fetch(request));
  }
}

/** `env.BINDING`: ids and stubs of the binding's class. */
export class DurableObjectNamespace {
  #binding;
  constructor(binding) {
    this.#binding = binding;
  }
  idFromName(name) {
    const name_ = String(name);
    return new DurableObjectId(call(() => raw.idFromName(this.#binding, name_)), name_);
  }
  newUniqueId() {
    return new DurableObjectId(call(() => raw.newUniqueId(this.#binding)));
  }
  idFromString(id) {
    try {
      return new DurableObjectId(call(() => raw.idFromString(this.#binding, String(id))));
    } catch (error) {
      // Cloudflare throws a TypeError for an id that is not one of this namespace's.
      if (error.kind !== "bad-id") throw error;
      const invalid = new TypeError(`Invalid Durable Object ID: ${error.payload.val}`);
      invalid.kind = error.kind;
      throw invalid;
    }
  }
  get(id) {
    if (!(id instanceof DurableObjectId)) throw new TypeError("get: expected an id from idFromName, newUniqueId or idFromString");
    return new DurableObjectStub(call(() => raw.get(this.#binding, id.toString())), id);
  }
  getByName(name) {
    return this.get(this.idFromName(name));
  }
  /** Cloudflare's namespace restricted to a jurisdiction ("eu", "fedramp"): one machine is in
   * one place, so it is this namespace (its ids are the same). */
  jurisdiction(name) {
    if (typeof name !== "string" || name === "") throw new TypeError("jurisdiction: expected a jurisdiction name");
    return this;
  }
}

const namespaces = new Map();

/** The names `env` has: the vars and secrets, then the bindings. */
function names() {
  const all = new Set(Array.from(vars.all(), ([name]) => name));
  for (const name of raw.bindingNames()) all.add(name);
  const assetsBinding = assets.binding();
  if (assetsBinding !== undefined && assetsBinding !== null) all.add(assetsBinding);
  return [...all];
}

let fetcher = null;

/** The namespace bound as `name`, or undefined. */
function namespaceOf(name) {
  let namespace = namespaces.get(name);
  if (namespace === undefined) {
    if (!raw.bindingNames().includes(name)) return undefined;
    namespace = new DurableObjectNamespace(name);
    namespaces.set(name, namespace);
  }
  return namespace;
}

/** `env.NAME`: a var or secret's value, else the assets' binding, else the namespace bound as
 * NAME, else undefined (as on Cloudflare: code tests `if (env.CACHE)`). */
function lookup(name) {
  const value = vars.get(name);
  if (value !== undefined && value !== null) return value;
  if (name === assets.binding()) return (fetcher ??= new AssetsFetcher());
  return namespaceOf(name);
}

/**
 * `exports` of `cloudflare:workers` (and `ctx.exports`): the worker's own Durable Object classes
 * as namespaces. Cloudflare keys them by exported class name; duro by binding name, which
 * Cloudflare's templates give the class's own name (`{"name": "MyAgent", "class_name":
 * "MyAgent"}`). Entrypoints (service loopbacks) are not there yet.
 */
export const exports = new Proxy(
  {},
  {
    get: (_target, name) => (typeof name === "string" && name !== "then" ? namespaceOf(name) : undefined),
    has: (_target, name) => typeof name === "string" && raw.bindingNames().includes(name),
    ownKeys: () => raw.bindingNames(),
    getOwnPropertyDescriptor(_target, name) {
      const value = typeof name === "string" ? namespaceOf(name) : undefined;
      return value === undefined ? undefined : { value, enumerable: true, configurable: true, writable: false };
    },
  },
);

/**
 * The vars and secrets, then the bindings, by name: `env.COUNTER` is the namespace bound as
 * COUNTER. `env` enumerates as a plain object does (`Object.keys(env)`, `{...env}`), so libraries
 * that look for their namespaces among its values find them.
 */
export const env = new Proxy(
  {},
  {
    get(_target, name) {
      // Not bindings: what promise and JSON machinery probe for.
      if (typeof name !== "string" || name === "then" || name === "toJSON") return undefined;
      return lookup(name);
    },
    has(_target, name) {
      return typeof name === "string" && names().includes(name);
    },
    ownKeys() {
      return names();
    },
    getOwnPropertyDescriptor(_target, name) {
      if (typeof name !== "string" || !names().includes(name)) return undefined;
      return { value: lookup(name), writable: false, enumerable: true, configurable: true };
    },
  },
);
