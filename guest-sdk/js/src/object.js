// A Durable Object class in JavaScript: the `DurableObject` base class with `this.ctx` and
// `this.env`, and `objectExports`, which turns a module's classes into the component's exports
// (`fetch`, `alarm`, `websocket-*`, `evict`). One instance of the class lives per object while it
// is live; it is made at the object's first event, never at build time (the build snapshots the
// module).

import * as state from "duro:object/state@0.1.0";
import { env, exports, DurableObjectId } from "./namespaces.js";
import { Storage } from "./storage.js";
import { CloseEvent, ErrorEvent, MessageEvent, Sockets, WebSocket, enterSockets, message } from "./websockets.js";
import { toRequest, fromResponse, errorResponse } from "./http.js";
import { decode, encode, encodeThrown, rpcMethod } from "./rpc.js";
import { Background, enter, install } from "./timers.js";
import { logged } from "./errors.js";

/** `this.ctx` of an object. */
export class DurableObjectState {
  #sockets;
  #background;
  constructor(sockets, background) {
    this.#sockets = sockets;
    this.#background = background;
    this.id = new DurableObjectId(state.id(), state.name());
    this.storage = new Storage();
    this.exports = exports;
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
  /**
   * Runs `f`; no other event of the object (request, RPC call, socket message, alarm) starts
   * until it settles, timers it waits on included. Resolves as `f` does.
   */
  blockConcurrencyWhile(f) {
    return this.#background.blockConcurrencyWhile(f);
  }
  /** Keeps `promise` running after the event (the object stays in memory meanwhile). */
  waitUntil(promise) {
    this.#background.waitUntil(promise);
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

/**
 * The component exports that run `module`'s class. An instance may hold many objects of the class
 * (the shared-instance world): each event runs on the object `state.id()` names, made at its first
 * event and dropped when the runtime evicts it.
 */
export function objectExports(module) {
  install();
  const objects = new Map();
  let Class = null;
  /** The running event's object: its class instance, sockets and background work. */
  const live = () => {
    const id = state.id();
    let entry = objects.get(id);
    if (entry === undefined) {
      Class ??= findClass(module, state.className());
      const sockets = new Sockets();
      const background = new Background();
      enter(background);
      entry = { object: null, sockets, background };
      objects.set(id, entry);
      try {
        entry.object = new Class(new DurableObjectState(sockets, background), env);
      } catch (error) {
        objects.delete(id);
        throw error;
      }
    }
    enter(entry.background);
    return entry;
  };
  /** Runs an event's handler (its timers tell the runtime their wake as they change). */
  const run = ({ background }, handler) => background.run(handler);
  /**
   * A socket's event: to its listeners for a socket accepted with `ws.accept()`, else to the
   * class's handler (`webSocketMessage` …). An error has no caller to go to: it goes to the
   * runtime's log.
   */
  const onSocket = async (entry, ws, event, handler, args) => {
    const { object } = entry;
    const standard = WebSocket._isStandard(ws);
    if (!standard && typeof object[handler] !== "function") return;
    try {
      await run(entry, () => (standard ? Promise.all(ws.dispatchEvent(event)) : object[handler](ws, ...args)));
    } catch (error) {
      const what = standard ? `WebSocket ${event.type} listener` : handler;
      console.error(`${what} failed: ${logged(error)}`);
    }
  };
  return {
    async fetch(request) {
      try {
        const entry = live();
        const { object } = entry;
        if (typeof object.fetch !== "function") throw new Error("the class has no fetch method");
        enterSockets(entry.sockets);
        return await fromResponse(await run(entry, () => object.fetch(toRequest(request))));
      } catch (error) {
        return errorResponse("fetch", error);
      }
    },
    async alarm(info) {
      const entry = live();
      const { object } = entry;
      if (typeof object.alarm !== "function") throw "the class has no alarm method";
      try {
        await run(entry, () => object.alarm({ retryCount: info.retryCount, isRetry: info.isRetry }));
      } catch (error) {
        console.error(`alarm failed: ${logged(error)}`);
        throw error instanceof Error ? error.message : String(error);
      }
    },
    async websocketMessage(id, value) {
      const entry = live();
      const data = message(value);
      const event = new MessageEvent("message", { data });
      await onSocket(entry, entry.sockets.get(id), event, "webSocketMessage", [data]);
    },
    async websocketClose(id, code, reason, wasClean) {
      const entry = live();
      const event = new CloseEvent("close", { code, reason, wasClean });
      await onSocket(entry, entry.sockets.closed(id), event, "webSocketClose", [code, reason, wasClean]);
      entry.sockets.forget(id);
    },
    async websocketError(id, error) {
      const entry = live();
      const event = new ErrorEvent("error", { error: new Error(error) });
      await onSocket(entry, entry.sockets.get(id), event, "webSocketError", [new Error(error)]);
    },
    async rpc(method, args) {
      try {
        const entry = live();
        const { object } = entry;
        const callee = rpcMethod(object, method);
        return encode(await run(entry, () => callee.apply(object, decode(args))));
      } catch (error) {
        throw encodeThrown(error);
      }
    },
    async wake() {
      // After a reset nothing of the object's timers is left: nothing to run, nothing to make.
      const entry = objects.get(state.id());
      if (entry === undefined) return;
      enter(entry.background);
      await entry.background.wake();
    },
    evict(id) {
      objects.get(id)?.background.forget();
      objects.delete(id);
    },
  };
}
