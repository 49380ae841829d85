// RPC on stubs (`stub.sayHello("world")`): the encoding of arguments and results, the caller's
// side (a stub whose every other property is a method of the remote class) and the callee's (which
// methods a call may reach).
//
// Arguments, results and thrown values cross in the structured-clone encoding of `clone.js` (the
// README's "Value encoding"), as storage keeps them; what RPC adds is refusing instances of
// classes (workerd's serializer does; storage keeps their properties), RpcTargets included.

import { deserialize, serialize, unsupportedType } from "./clone.js";

// What crosses: no instances of classes, and an error without its stack (the caller's error has
// its own, as on Cloudflare).
const RPC = Object.freeze({
  stack: false,
  refuse(value, name) {
    if (value instanceof RpcTarget) {
      return unsupportedType(`${name} (an RpcTarget: passing objects by reference is not supported by duro yet)`);
    }
    return unsupportedType(name);
  },
});

/** Cloudflare's base class for objects passed by reference over RPC (not supported yet: such a
 * value is refused when it would cross). */
export class RpcTarget {}

/** Cloudflare's stub type for RpcTargets; duro's stubs are `DurableObjectStub`s. */
export class RpcStub {
  constructor() {
    throw new Error("RpcStub: passing objects by reference over RPC is not supported by duro yet");
  }
}

/** `value` in the RPC encoding, as bytes. */
export function encode(value) {
  return serialize(value, RPC);
}

/** The value that encoded bytes stand for. */
export const decode = deserialize;

/** What a method or handler threw, as bytes: an error keeps its type, message, cause and own
 * properties; one that cannot be cloned whole keeps its type and message (workerd's). */
export function encodeThrown(error) {
  try {
    return encode(error);
  } catch {
    const copy = new Error(error instanceof Error ? String(error.message) : String(error));
    if (error instanceof Error) copy.name = String(error.name);
    return encode(copy);
  }
}

/** The error a caller's promise rejects with for an encoded thrown value: `remote` says it was
 * thrown on the other side, `durableObjectId` by which object (RPC's, as on Cloudflare). */
export function thrown(bytes, id) {
  const value = decode(bytes);
  if (value instanceof Error) {
    value.remote = true;
    if (id !== undefined) value.durableObjectId = String(id);
  }
  return value;
}

// Methods a stub never reaches: what the runtime calls as handlers (Cloudflare's list) and what
// every object has.
const NOT_RPC = new Set([
  "constructor", "fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError", "connect",
]);

/** The method `name` of `object` that an RPC call may run, or a TypeError saying why not. */
export function rpcMethod(object, name) {
  const method = NOT_RPC.has(name) || name in Object.prototype ? undefined : object[name];
  if (typeof method !== "function") {
    throw new TypeError(`The RPC receiver does not implement the method "${name}".`);
  }
  return method;
}

/**
 * A stub whose properties other than its own (`fetch`, `id`, `name`) are RPC methods:
 * `stub.sayHello("x")` sends `["x"]` to the method `sayHello` through `send(name, bytes)`, which
 * answers `{ tag: "ok" | "err", val: bytes }` (or a promise of it). The call leaves at once; its
 * promise settles with what the method returned or threw.
 */
export function withMethods(stub, send) {
  return new Proxy(stub, {
    get(target, name) {
      if (typeof name !== "string" || name in target) {
        const value = Reflect.get(target, name, target);
        return typeof value === "function" ? value.bind(target) : value;
      }
      // Not a thenable: `await stub` is the stub.
      if (name === "then") return undefined;
      return (...args) => {
        let outcome;
        try {
          outcome = send(name, encode(args));
        } catch (error) {
          return Promise.reject(error);
        }
        const settle = (outcome) => (outcome.tag === "ok" ? decode(outcome.val) : Promise.reject(thrown(outcome.val, target.id)));
        return typeof outcome.then === "function" ? outcome.then(settle) : Promise.resolve(settle(outcome));
      };
    },
  });
}
