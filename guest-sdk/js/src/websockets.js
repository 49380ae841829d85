// WebSockets: `WebSocketPair`, the `WebSocket` a handler is given, and the socket registry of one
// object instance. The runtime holds the connections; a `WebSocket` here is a handle (the
// runtime's socket id) that keeps its identity for the instance's life, so `socket !== ws` in a
// broadcast loop works as on Cloudflare. Both of Cloudflare's APIs: hibernatable sockets
// (`ctx.acceptWebSocket(ws)`, events to the class's `webSocketMessage` …) and the standard one
// (`ws.accept()`, events to the socket's listeners, the object kept in memory while it is open).

import * as raw from "duro:object/websockets@0.1.0";
import { deserialize, serialize } from "./clone.js";
import { lift } from "./errors.js";

const MAX_ATTACHMENT = 16 * 1024;

function call(f) {
  return lift("websocket", f);
}

/** A socket the object accepted (or the client end of a `WebSocketPair`). */
export class WebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  // Cloudflare's names for the same states.
  static READY_STATE_CONNECTING = 0;
  static READY_STATE_OPEN = 1;
  static READY_STATE_CLOSING = 2;
  static READY_STATE_CLOSED = 3;
  url = null;
  protocol = "";
  extensions = "";

  /** The runtime's id once accepted; null for a pair's client end. */
  #id = null;
  /** An attachment serialized before the socket was accepted (workerd allows it), as bytes. */
  #attachment;
  /** Accepted with `accept()`: its events go to its listeners. */
  #standard = false;
  #listeners = new Map();
  readyState = WebSocket.OPEN;
  binaryType = "arraybuffer";
  onmessage = null;
  onclose = null;
  onerror = null;

  /** Sends a string or binary data (ArrayBuffer or a typed array). */
  send(message) {
    const id = this.#accepted("send");
    const value =
      typeof message === "string"
        ? { tag: "text", val: message }
        : { tag: "binary", val: bytes(message) };
    call(() => raw.send(id, value));
  }

  /** Closes the socket; closing one that is already closed does nothing. */
  close(code = 1000, reason = "") {
    const id = this.#accepted("close");
    if (this.readyState === WebSocket.CLOSED) return;
    this.readyState = WebSocket.CLOSED;
    try {
      call(() => raw.close(id, code, reason));
    } catch (error) {
      if (error.kind !== "unknown-socket") throw error;
    }
  }

  /** Keeps a structured clone of `value` with the socket (at most 16 KiB); it survives
   * hibernation. Before the socket is accepted, it is kept until it is. */
  serializeAttachment(value) {
    const bytes = serialize(value);
    if (bytes.byteLength > MAX_ATTACHMENT) {
      // Cloudflare's text, its missing space included.
      throw new Error(
        `A WebSocket 'attachment' cannot be larger than ${MAX_ATTACHMENT} bytes.'attachment' was ${bytes.byteLength} bytes.`,
      );
    }
    if (this.#id === null) this.#attachment = bytes;
    else call(() => raw.serializeAttachment(this.#id, bytes));
  }

  deserializeAttachment() {
    const data = this.#id === null ? this.#attachment : call(() => raw.deserializeAttachment(this.#id));
    return data === undefined ? null : deserialize(data);
  }

  /**
   * Accepts this server end with the standard API: its events go to its listeners
   * (`addEventListener("message" | "close" | "error")`, `onmessage` …), and the object stays in
   * memory while it is open (it cannot hibernate). Only in the fetch that upgrades.
   */
  accept(_options) {
    if (this.#id !== null) throw new Error("Can't accept() WebSocket twice (or after acceptWebSocket)");
    if (currentSockets === null) throw new Error("ws.accept() outside a Durable Object's fetch");
    currentSockets.accept(this, []);
    call(() => raw.hold(this.#id));
    this.#standard = true;
  }

  addEventListener(type, listener) {
    if (typeof listener !== "function" && typeof listener?.handleEvent !== "function") return;
    if (!this.#listeners.has(type)) this.#listeners.set(type, []);
    this.#listeners.get(type).push(listener);
  }

  removeEventListener(type, listener) {
    const list = this.#listeners.get(type);
    if (list) this.#listeners.set(type, list.filter((l) => l !== listener));
  }

  /** Delivers an event to the `on…` handler and the listeners, in order; returns what they
   * returned (promises, for the event to wait on). */
  dispatchEvent(event) {
    const handlers = [this[`on${event.type}`], ...(this.#listeners.get(event.type) ?? [])];
    const results = [];
    for (const handler of handlers) {
      if (typeof handler === "function") results.push(handler.call(this, event));
      else if (handler && typeof handler.handleEvent === "function") results.push(handler.handleEvent(event));
    }
    return results;
  }

  static _isStandard(socket) {
    return socket.#standard;
  }

  #accepted(what) {
    if (this.#id === null) throw new Error(`ws.${what}: the socket is not accepted (this.ctx.acceptWebSocket)`);
    return this.#id;
  }

  static _bind(socket, id) {
    socket.#id = id;
    const attachment = socket.#attachment;
    socket.#attachment = undefined;
    if (attachment !== undefined) call(() => raw.serializeAttachment(id, attachment));
  }

  static _id(socket) {
    return socket.#id;
  }
}

function bytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError("ws.send: expected a string, an ArrayBuffer or a typed array");
}

/** `new WebSocketPair()`: `[client, server] = Object.values(pair)`; accept the server end. */
export class WebSocketPair {
  constructor() {
    this[0] = new WebSocket();
    this[1] = new WebSocket();
  }
}

/** `ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"))`. */
export class WebSocketRequestResponsePair {
  constructor(request, response) {
    this.request = request;
    this.response = response;
  }
}

/** The running fetch's sockets (for `ws.accept()`), set by the object's exports. */
let currentSockets = null;

export function enterSockets(sockets) {
  currentSockets = sockets;
}

/** The events of the standard API. */
export class MessageEvent {
  constructor(type, init = {}) {
    this.type = type;
    this.data = init.data;
  }
}

export class CloseEvent {
  constructor(type, init = {}) {
    this.type = type;
    this.code = init.code ?? 1005;
    this.reason = init.reason ?? "";
    this.wasClean = init.wasClean ?? false;
  }
}

export class ErrorEvent {
  constructor(type, init = {}) {
    this.type = type;
    this.error = init.error;
    this.message = init.message ?? String(init.error);
  }
}

/** One object instance's sockets, by the runtime's id. */
export class Sockets {
  #byId = new Map();

  /** Accepts the current upgrade as `ws` (a pair's server end). */
  accept(ws, tags = []) {
    if (!(ws instanceof WebSocket)) throw new TypeError("acceptWebSocket: expected a WebSocketPair's server end");
    if (WebSocket._id(ws) !== null) throw new Error("acceptWebSocket: this WebSocket is already accepted");
    const id = call(() => raw.accept(tags.map(String)));
    WebSocket._bind(ws, id);
    this.#byId.set(id, ws);
  }

  /** The handle of socket `id`, the same object every time. */
  get(id) {
    let ws = this.#byId.get(id);
    if (ws === undefined) {
      ws = new WebSocket();
      WebSocket._bind(ws, id);
      this.#byId.set(id, ws);
    }
    return ws;
  }

  /** The socket closed: its handle says so, and is forgotten after the handler. */
  closed(id) {
    const ws = this.get(id);
    ws.readyState = WebSocket.CLOSED;
    return ws;
  }

  forget(id) {
    this.#byId.delete(id);
  }

  all(tag) {
    // The ids come as a BigUint64Array, whose own map would make BigInts again.
    return Array.from(raw.getWebsockets(tag ?? undefined), (id) => this.get(id));
  }

  tags(ws) {
    const id = WebSocket._id(ws);
    if (id === null) return [];
    return call(() => raw.getTags(id));
  }

  setAutoResponse(pair) {
    raw.setAutoResponse(pair ? [String(pair.request), String(pair.response)] : undefined);
  }
}

// Cloudflare's globals, for code that uses them without importing.
globalThis.WebSocketPair ??= WebSocketPair;
globalThis.WebSocketRequestResponsePair ??= WebSocketRequestResponsePair;
globalThis.WebSocket ??= WebSocket;
globalThis.MessageEvent ??= MessageEvent;
globalThis.CloseEvent ??= CloseEvent;
globalThis.ErrorEvent ??= ErrorEvent;

/** A WIT message as a handler gets it: a string, or an ArrayBuffer. */
export function message(value) {
  if (value.tag === "text") return value.val;
  const data = value.val;
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
}
