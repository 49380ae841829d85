// `node:async_hooks` under `nodejs_compat`: `AsyncLocalStorage` whose store follows the work it
// was set for across `await`, promise callbacks and `queueMicrotask`, as on Cloudflare
// (frameworks and the Agents SDK read their request's context this way), and `AsyncResource`.
//
// The JS engine has no async context of its own, so this module keeps one: `current` is the
// context (a Map from each AsyncLocalStorage to its store, never changed once made), and every
// callback given to `then` or `queueMicrotask` is bound to the context it was given in. An
// `await` takes no `then` in the engine; the build therefore compiles `async` functions to
// generators driven through `then` (esbuild's lowering) whenever this module is in the bundle.
// The rest of the module (`createHook`, ids) is unenv's.

export { asyncWrapProviders, createHook, executionAsyncId, executionAsyncResource, triggerAsyncId } from "unenv/node/async_hooks";

const EMPTY = new Map();
let current = EMPTY;

function inContext(context, fn, thisArg, args) {
  const previous = current;
  current = context;
  try {
    return Reflect.apply(fn, thisArg, args);
  } finally {
    current = previous;
  }
}

/** `fn`, run in the context it is bound in now. Outside any store, `fn` itself. */
function bound(fn) {
  if (typeof fn !== "function" || current === EMPTY) return fn;
  const context = current;
  return function (...args) {
    return inContext(context, fn, this, args);
  };
}

const nativeThen = Promise.prototype.then;
Object.defineProperty(Promise.prototype, "then", {
  value: function then(onFulfilled, onRejected) {
    return Reflect.apply(nativeThen, this, [bound(onFulfilled), bound(onRejected)]);
  },
  configurable: true,
  writable: true,
});
const nativeQueueMicrotask = globalThis.queueMicrotask;
globalThis.queueMicrotask = (callback) => nativeQueueMicrotask(bound(callback));

function withStore(storage, store) {
  const next = new Map(current);
  if (store === undefined) next.delete(storage);
  else next.set(storage, store);
  return next.size === 0 ? EMPTY : next;
}

export class AsyncLocalStorage {
  #enabled = true;

  getStore() {
    return this.#enabled ? current.get(this) : undefined;
  }

  run(store, callback, ...args) {
    this.#enabled = true;
    return inContext(withStore(this, store), callback, undefined, args);
  }

  exit(callback, ...args) {
    return inContext(withStore(this, undefined), callback, undefined, args);
  }

  enterWith(store) {
    this.#enabled = true;
    current = withStore(this, store);
  }

  disable() {
    this.#enabled = false;
    current = withStore(this, undefined);
  }

  /** `fn` bound to the current context. */
  static bind(fn) {
    if (typeof fn !== "function") throw new TypeError("AsyncLocalStorage.bind: expected a function");
    const context = current;
    return function (...args) {
      return inContext(context, fn, this, args);
    };
  }

  /** A function that runs its argument in the context of now. */
  static snapshot() {
    const context = current;
    return (fn, ...args) => inContext(context, fn, undefined, args);
  }
}

export class AsyncResource {
  #context = current;

  constructor(type) {
    this.type = type;
  }

  runInAsyncScope(fn, thisArg, ...args) {
    return inContext(this.#context, fn, thisArg, args);
  }

  bind(fn, thisArg) {
    const resource = this;
    return function (...args) {
      return resource.runInAsyncScope(fn, thisArg ?? this, ...args);
    };
  }

  static bind(fn, type, thisArg) {
    return new AsyncResource(type ?? fn.name ?? "bound-anonymous-fn").bind(fn, thisArg);
  }

  emitDestroy() {
    return this;
  }

  asyncId() {
    return 0;
  }

  triggerAsyncId() {
    return 0;
  }
}

export default { AsyncLocalStorage, AsyncResource };
