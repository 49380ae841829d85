// A Durable Object class in JavaScript: the `DurableObject` base class with `this.ctx` and
// `this.env`, and `objectExports`, which turns a module's classes into the component's exports
// (`fetch`, `alarm`, `websocket-*`). One instance of the class lives per object while it is live;
// it is made at the object's first event, never at build time (the build snapshots the module).

import * as state from "duro:object/state@0.1.0";
import { env, DurableObjectId } from "./namespaces.js";
import { Storage } from "./storage.js";
import { Sockets, message } from "./websockets.js";
import { toRequest, fromResponse, errorResponse } from "./http.js";

/** `this.ctx` of an object. */
export class DurableObjectState {
  #sockets;
  constructor(sockets) {
    this.#sockets = sockets;
    this.id = new DurableObjectId(state.id(), state.name());
    this.storage = new Storage();
  }
  /** Accepts the upgrade of the current fetch, hibernatable; answer it with status 101. */
  acceptWebSocket(ws, tags) {
    this.#sockets.accept(ws, tags);
  }
  /** The open sockets, optionally only those with `tag`. */
  getWebSockets(tag) {
    return this.#sockets.all(tag);
  }
  getTags(ws) {
    return this.#sockets.tags(ws);
  }
  /** A text message the runtime answers on every socket without waking the object; null removes it. */
  setWebSocketAutoResponse(pair) {
    this.#sockets.setAutoResponse(pair);
  }
  /** Events are already one at a time: runs `f`. */
  async blockConcurrencyWhile(f) {
    return f();
  }
  /** The promise runs to its end within the event. */
  waitUntil(promise) {
    Promise.resolve(promise).catch((error) => console.error(`waitUntil: ${error}`));
  }
}

/** The base class of a Durable Object class: `this.ctx` (id, storage, sockets) and `this.env`. */
export class DurableObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}

/** The class `className` among a module's exports. */
function findClass(module, className) {
  const named = module[className];
  if (typeof named === "function") return named;
  const classes = Object.entries(module).filter(
    ([, value]) => typeof value === "function" && value.prototype instanceof DurableObject,
  );
  if (classes.length === 1) return classes[0][1];
  const names = classes.map(([name]) => name).join(", ") || "none";
  throw new Error(`this component has no class "${className}" (its DurableObject classes: ${names})`);
}

/** The component exports that run `module`'s class for this object. */
export function objectExports(module) {
  let object = null;
  let sockets = null;
  const live = () => {
    if (object === null) {
      const Class = findClass(module, state.className());
      sockets = new Sockets();
      object = new Class(new DurableObjectState(sockets), env);
    }
    return object;
  };
  // A socket handler's error has no caller to go to: it goes to the runtime's log.
  const onSocket = async (handler, args) => {
    if (typeof object[handler] !== "function") return;
    try {
      await object[handler](...args);
    } catch (error) {
      console.error(`${handler} failed: ${error instanceof Error ? error.stack || error.message : error}`);
    }
  };
  return {
    async fetch(request) {
      try {
        const o = live();
        if (typeof o.fetch !== "function") throw new Error("the class has no fetch method");
        return await fromResponse(await o.fetch(toRequest(request)));
      } catch (error) {
        return errorResponse("fetch", error);
      }
    },
    async alarm(info) {
      const o = live();
      if (typeof o.alarm !== "function") throw "the class has no alarm method";
      try {
        await o.alarm({ retryCount: info.retryCount, isRetry: info.isRetry });
      } catch (error) {
        console.error(`alarm failed: ${error instanceof Error ? error.stack || error.message : error}`);
        throw error instanceof Error ? error.message : String(error);
      }
    },
    async websocketMessage(id, value) {
      live();
      await onSocket("webSocketMessage", [sockets.get(id), message(value)]);
    },
    async websocketClose(id, code, reason, wasClean) {
      live();
      await onSocket("webSocketClose", [sockets.closed(id), code, reason, wasClean]);
      sockets.forget(id);
    },
    async websocketError(id, error) {
      live();
      await onSocket("webSocketError", [sockets.get(id), new Error(error)]);
    },
  };
}
