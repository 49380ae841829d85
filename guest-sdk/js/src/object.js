// A Durable Object class in JavaScript: the `DurableObject` base class with `this.ctx` and
// `this.env`, and `objectExports`, which turns a module's classes into the component's exports
// (`fetch`, `alarm`, `websocket-*`, `evict`). One instance of the class lives per object while it
// is live; it is made at the object's first event, never at build time (the build snapshots the
// module).

import * as state from "duro:object/state@0.1.0";
import { env, exports, DurableObjectId, startCallsWithoutWaiting } from "./namespaces.js";
import { Storage } from "./storage.js";
import { CloseEvent, ErrorEvent, MessageEvent, Sockets, WebSocket, enterSockets, message } from "./websockets.js";
import { toRequest, fromResponse, errorResponse } from "./http.js";
import { decode, encode, encodeThrown, rpcMethod } from "./rpc.js";
import { Background, enter, install, keepUntilSettled } from "./timers.js";
import { logged } from "./errors.js";
import * as inbox from "duro:object/inbox@0.1.0";
import { newCall, onInbound } from "./inbox.js";
import { outsideTransactions } from "./storage.js";

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
  startCallsWithoutWaiting(keepUntilSettled);
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
      entry = { object: null, sockets, background, answers: [] };
      objects.set(id, entry);
      try {
        entry.object = new Class(new DurableObjectState(sockets, background), env);
      } catch (error) {
        objects.delete(id);
        throw error;
      }
    }
    enter(entry.background);
    answerHeld(entry);
    return entry;
  };
  /** Answers of inbox events that settled while another object was mounted: the runtime takes
   * an answer only from the object it belongs to. */
  const answerHeld = (entry) => {
    if (entry.answers.length > 0) for (const answer of entry.answers.splice(0)) answer();
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
  /** What each event does to its object (`entry`): the exports', and the inbox's. */
  const events = {
    async fetch(entry, request) {
      try {
        const { object } = entry;
        if (typeof object.fetch !== "function") throw new Error("the class has no fetch method");
        enterSockets(entry.sockets);
        return await fromResponse(await run(entry, () => object.fetch(toRequest(request))));
      } catch (error) {
        return errorResponse("fetch", error);
      }
    },
    /** Throws the failure's text (the alarm is retried). */
    async alarm(entry, info) {
      const { object } = entry;
      if (typeof object.alarm !== "function") throw "the class has no alarm method";
      try {
        await run(entry, () => object.alarm({ retryCount: info.retryCount, isRetry: info.isRetry }));
      } catch (error) {
        console.error(`alarm failed: ${logged(error)}`);
        throw error instanceof Error ? error.message : String(error);
      }
    },
    async websocketMessage(entry, id, value) {
      const data = message(value);
      const event = new MessageEvent("message", { data });
      await onSocket(entry, entry.sockets.get(id), event, "webSocketMessage", [data]);
    },
    async websocketClose(entry, id, code, reason, wasClean) {
      const event = new CloseEvent("close", { code, reason, wasClean });
      await onSocket(entry, entry.sockets.closed(id), event, "webSocketClose", [code, reason, wasClean]);
      entry.sockets.forget(id);
    },
    async websocketError(entry, id, error) {
      const event = new ErrorEvent("error", { error: new Error(error) });
      await onSocket(entry, entry.sockets.get(id), event, "webSocketError", [new Error(error)]);
    },
    /** Answers the encoded value returned; throws the encoded value thrown. */
    async rpc(entry, method, args) {
      try {
        const { object } = entry;
        const callee = rpcMethod(object, method);
        return encode(await run(entry, () => callee.apply(object, decode(args))));
      } catch (error) {
        throw encodeThrown(error);
      }
    },
  };
  const ok = (val) => ({ tag: "ok", val });
  const err = (val) => ({ tag: "err", val });
  /**
   * Runs an event taken from the inbox beside the waiting one, as an event of the object mounted
   * now (after any transaction that is open, whose writes it must not join), and answers it. Its
   * work counts as the object's background work until it is answered.
   */
  onInbound(({ id, event: { tag, val } }) => {
    const entry = live();
    const objectId = state.id();
    const answer = (send) => {
      if (state.id() === objectId) send();
      else entry.answers.push(send);
    };
    const done = (outcome) => answer(() => inbox.done(id, outcome));
    const handled = outsideTransactions().then(() => {
      enter(entry.background);
      switch (tag) {
        case "request":
          return events.fetch(entry, val).then((response) => answer(() => inbox.respond(id, response)));
        case "rpc":
          return events.rpc(entry, ...val).then(ok, err).then((outcome) => answer(() => inbox.respondRpc(id, outcome)));
        case "alarm":
          return events.alarm(entry, val).then(() => ok(undefined), err).then(done);
        case "websocket-message":
          return events.websocketMessage(entry, ...val).then(() => done(ok(undefined)));
        case "websocket-close":
          return events.websocketClose(entry, ...val).then(() => done(ok(undefined)));
        case "websocket-error":
          return events.websocketError(entry, ...val).then(() => done(ok(undefined)));
      }
    });
    entry.background.waitUntil(handled);
  });
  return {
    async fetch(request) {
      newCall();
      let entry;
      try {
        entry = live();
      } catch (error) {
        return errorResponse("fetch", error);
      }
      return events.fetch(entry, request);
    },
    async alarm(info) {
      newCall();
      return events.alarm(live(), info);
    },
    async websocketMessage(id, value) {
      newCall();
      return events.websocketMessage(live(), id, value);
    },
    async websocketClose(id, code, reason, wasClean) {
      newCall();
      return events.websocketClose(live(), id, code, reason, wasClean);
    },
    async websocketError(id, error) {
      newCall();
      return events.websocketError(live(), id, error);
    },
    async rpc(method, args) {
      newCall();
      let entry;
      try {
        entry = live();
      } catch (error) {
        throw encodeThrown(error);
      }
      return events.rpc(entry, method, args);
    },
    async wake() {
      newCall();
      // After a reset nothing of the object's timers is left: nothing to run, nothing to make.
      const entry = objects.get(state.id());
      if (entry === undefined) return;
      enter(entry.background);
      answerHeld(entry);
      await entry.background.wake();
    },
    evict(id) {
      newCall();
      objects.get(id)?.background.forget();
      objects.delete(id);
    },
  };
}
