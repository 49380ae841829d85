// RPC on stubs (`stub.sayHello("world")`): the encoding of arguments and results, the caller's
// side (a stub whose every other property is a method of the remote class) and the callee's (which
// methods a call may reach).
//
// The encoding (the README's "RPC encoding"; every SDK reads and writes it) is JSON, with the
// values JSON lacks as objects tagged by "$type": undefined, non-finite numbers and -0, BigInt,
// Date, RegExp, Map, Set, ArrayBuffer and the typed arrays (bytes in base64), Error (name and
// message; not the stack, as Cloudflare), and a plain object that has a "$type" key of its own.
// Values that cannot be copied (functions, symbols, class instances, cycles) are refused with
// Cloudflare's DataCloneError text.

const TYPED = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView,
};
const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function cloneError(what) {
  const error = new Error(`Could not serialize object of type "${what}". This type does not support serialization.`);
  error.name = "DataCloneError";
  return error;
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function unbase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** `value` as a JSON value of the encoding. */
function tag(value, seen) {
  switch (typeof value) {
    case "undefined":
      return { $type: "undefined" };
    case "string":
    case "boolean":
      return value;
    case "number":
      if (Number.isFinite(value) && !Object.is(value, -0)) return value;
      return { $type: "Number", value: Object.is(value, -0) ? "-0" : String(value) };
    case "bigint":
      return { $type: "BigInt", value: value.toString() };
    case "function":
      return throwClone(value.name ? `function ${value.name}` : "function");
    case "symbol":
      return throwClone("symbol");
  }
  if (value === null) return null;
  if (seen.has(value)) throw cloneError("cyclic value");
  seen.add(value);
  try {
    return tagObject(value, seen);
  } finally {
    seen.delete(value);
  }
}

function throwClone(what) {
  throw cloneError(what);
}

function tagObject(value, seen) {
  if (Array.isArray(value)) return Array.from(value, (item) => tag(item, seen));
  if (value instanceof Date) return { $type: "Date", value: value.getTime() };
  if (value instanceof RegExp) return { $type: "RegExp", source: value.source, flags: value.flags };
  if (value instanceof Map) return { $type: "Map", value: Array.from(value, ([k, v]) => [tag(k, seen), tag(v, seen)]) };
  if (value instanceof Set) return { $type: "Set", value: Array.from(value, (item) => tag(item, seen)) };
  if (value instanceof ArrayBuffer) return { $type: "ArrayBuffer", value: base64(new Uint8Array(value)) };
  if (ArrayBuffer.isView(value)) {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return { $type: value.constructor.name, value: base64(bytes) };
  }
  if (value instanceof Error) return { $type: "Error", name: String(value.name), message: String(value.message) };
  if (value instanceof RpcTarget) {
    throw cloneError(`${value.constructor.name} (an RpcTarget: passing objects by reference is not supported by duro yet)`);
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw cloneError((proto.constructor && proto.constructor.name) || "object");
  }
  const out = {};
  for (const [key, item] of Object.entries(value)) out[key] = tag(item, seen);
  return Object.hasOwn(value, "$type") ? { $type: "Object", value: out } : out;
}

/** The value a JSON value of the encoding stands for. */
function untag(json) {
  if (json === null || typeof json !== "object") return json;
  if (Array.isArray(json)) return json.map(untag);
  if (!Object.hasOwn(json, "$type")) return untagEntries(json);
  const { value } = json;
  switch (json.$type) {
    case "undefined":
      return undefined;
    case "Number":
      return value === "-0" ? -0 : Number(value);
    case "BigInt":
      return BigInt(value);
    case "Date":
      return new Date(value ?? NaN);
    case "RegExp":
      return new RegExp(json.source, json.flags);
    case "Map":
      return new Map(value.map(([k, v]) => [untag(k), untag(v)]));
    case "Set":
      return new Set(value.map(untag));
    case "ArrayBuffer":
      return unbase64(value).buffer;
    case "Error": {
      const Type = ERRORS[json.name] ?? Error;
      const error = new Type(json.message);
      if (error.name !== json.name) error.name = json.name;
      return error;
    }
    case "Object":
      return untagEntries(value);
  }
  const Typed = TYPED[json.$type];
  if (Typed === undefined) throw new TypeError(`RPC: unknown encoded type ${JSON.stringify(json.$type)}`);
  const bytes = unbase64(value);
  if (Typed === DataView) return new DataView(bytes.buffer);
  return new Typed(bytes.buffer, 0, bytes.byteLength / Typed.BYTES_PER_ELEMENT);
}

function untagEntries(json) {
  const out = {};
  for (const [key, item] of Object.entries(json)) out[key] = untag(item);
  return out;
}

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
  return encoder.encode(JSON.stringify(tag(value, new Set())));
}

/** The value that encoded bytes stand for. */
export function decode(bytes) {
  return untag(JSON.parse(decoder.decode(bytes)));
}

/** What a method threw, as bytes: an Error keeps its name and message. */
export function encodeThrown(error) {
  try {
    return encode(error);
  } catch (cause) {
    return encode(new Error(String(error)));
  }
}

/** The error a caller's promise rejects with for an encoded thrown value. */
export function thrown(bytes) {
  const value = decode(bytes);
  if (value instanceof Error) value.remote = true;
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
 * answers `{ tag: "ok" | "err", val: bytes }`. The call leaves at once; its promise settles with
 * what the method returned or threw.
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
        return outcome.tag === "ok" ? Promise.resolve(decode(outcome.val)) : Promise.reject(thrown(outcome.val));
      };
    },
  });
}
