// The structured clone of a value as bytes: what `ctx.storage` keeps, WebSocket attachments hold
// and RPC arguments, results and errors cross in. One codec for all three, as on Cloudflare.
//
// The bytes are JSON (the README's "Value encoding"; the Rust, Python and C SDKs read and write
// it): a JSON-shaped value is its own JSON, and the values JSON lacks are objects tagged by
// "$type": undefined, non-finite numbers and -0, BigInt, boxed primitives, Date, RegExp, Map, Set,
// ArrayBuffer, the typed arrays and DataView (bytes in base64), Error (type, message, stack,
// cause and own properties), a plain object that has a "$type" key of its own, and a reference
// to an object met earlier in the same value (`{"$type": "Ref", "value": n}`, n counting objects
// in the order they are first met), so shared objects stay shared and cycles round-trip.
// Functions, symbols and the runtime's own objects throw DataCloneError before anything is
// written or sent; an instance of a class is stored as a plain object of its own properties
// (V8's structured clone), and refused by RPC (workerd's), which does not send an error's stack
// either: the `Options` say which.

const TYPED = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView,
};
if (typeof Float16Array === "function") TYPED.Float16Array = Float16Array;
const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
const ERROR_FIELDS = new Set(["name", "message", "stack", "cause"]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Cloudflare's error for a value structured clone cannot copy. */
export function dataCloneError(message) {
  if (typeof DOMException === "function") return new DOMException(message, "DataCloneError");
  const error = new Error(message);
  error.name = "DataCloneError";
  return error;
}

function cannotClone(value) {
  let shown;
  try {
    shown = typeof value === "symbol" ? value.toString() : String(value);
  } catch {
    shown = typeof value;
  }
  return dataCloneError(`${shown} could not be cloned.`);
}

export function unsupportedType(name) {
  return dataCloneError(`Could not serialize object of type "${name}". This type does not support serialization.`);
}

export function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

export function unbase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The walk that turns a value into its JSON form. */
class Tagger {
  constructor(options) {
    this.options = options;
    this.seen = new Map();
  }

  tag(value) {
    switch (typeof value) {
      case "undefined":
        return { $type: "undefined" };
      case "string":
      case "boolean":
        return value;
      case "number":
        return number(value);
      case "bigint":
        return { $type: "BigInt", value: value.toString() };
      case "function":
      case "symbol":
        throw cannotClone(value);
    }
    if (value === null) return null;
    const earlier = this.seen.get(value);
    if (earlier !== undefined) return { $type: "Ref", value: earlier };
    this.seen.set(value, this.seen.size);
    return this.object(value);
  }

  object(value) {
    if (Array.isArray(value)) return Array.from(value, (item) => this.tag(item));
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) return this.entries(value);
    if (value instanceof Date) return { $type: "Date", value: value.getTime() };
    if (value instanceof RegExp) return { $type: "RegExp", source: value.source, flags: value.flags };
    if (value instanceof Map) {
      return { $type: "Map", value: Array.from(value, ([k, v]) => [this.tag(k), this.tag(v)]) };
    }
    if (value instanceof Set) return { $type: "Set", value: Array.from(value, (item) => this.tag(item)) };
    if (value instanceof ArrayBuffer) return { $type: "ArrayBuffer", value: base64(new Uint8Array(value)) };
    if (ArrayBuffer.isView(value)) {
      const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      return { $type: value.constructor.name, value: base64(bytes) };
    }
    if (value instanceof Error) return this.error(value);
    const boxed = boxedPrimitive(value);
    if (boxed !== undefined) return { $type: "Boxed", value: this.tag(boxed) };
    const name = (proto && proto.constructor && proto.constructor.name) || "object";
    if (isRuntimeObject(value)) throw unsupportedType(name);
    if (this.options.refuse) throw this.options.refuse(value, name);
    return this.entries(value);
  }

  /** A plain object's own enumerable string-keyed properties (getters read, as V8 does). */
  entries(value) {
    const out = {};
    for (const key of Object.keys(value)) out[key] = this.tag(value[key]);
    return Object.hasOwn(value, "$type") ? { $type: "Object", value: out } : out;
  }

  error(value) {
    // The type is its name (a custom one is kept as a name: the class cannot cross).
    const name = typeof value.name === "string" ? value.name : "Error";
    const out = { $type: "Error", name, message: String(value.message ?? "") };
    if (this.options.stack && typeof value.stack === "string") out.stack = value.stack;
    if (Object.hasOwn(value, "cause")) out.cause = this.tag(value.cause);
    let props;
    for (const key of Object.keys(value)) {
      if (ERROR_FIELDS.has(key)) continue;
      (props ??= {})[key] = this.tag(value[key]);
    }
    if (props !== undefined) out.props = props;
    return out;
  }
}

function number(value) {
  if (Number.isFinite(value) && !Object.is(value, -0)) return value;
  return { $type: "Number", value: Object.is(value, -0) ? "-0" : String(value) };
}

function boxedPrimitive(value) {
  for (const Type of [Number, String, Boolean, BigInt]) {
    try {
      return Type.prototype.valueOf.call(value);
    } catch {
      // Not this kind of box.
    }
  }
  return undefined;
}

// Objects of the runtime (Request, Response, Headers, streams, WebSockets, promises...) are
// never copied field by field, as on Cloudflare.
function isRuntimeObject(value) {
  const tag = Object.prototype.toString.call(value);
  return tag !== "[object Object]" || value instanceof Promise || value instanceof WeakMap || value instanceof WeakSet;
}

/** The walk that turns a JSON form back into a value. */
class Untagger {
  constructor() {
    this.made = [];
  }

  keep(value) {
    this.made.push(value);
    return value;
  }

  untag(json) {
    if (json === null || typeof json !== "object") return json;
    if (Array.isArray(json)) {
      const out = this.keep([]);
      for (const item of json) out.push(this.untag(item));
      return out;
    }
    if (!Object.hasOwn(json, "$type")) return this.fill(this.keep({}), json);
    const { value } = json;
    switch (json.$type) {
      case "undefined":
        return undefined;
      case "Number":
        return value === "-0" ? -0 : Number(value);
      case "BigInt":
        return BigInt(value);
      case "Ref": {
        if (!Number.isInteger(value) || value < 0 || value >= this.made.length) {
          throw new TypeError(`stored value: a reference to object ${value}, of ${this.made.length}`);
        }
        return this.made[value];
      }
      case "Object":
        return this.fill(this.keep({}), value);
      case "Date":
        return this.keep(new Date(value ?? NaN));
      case "RegExp":
        return this.keep(new RegExp(json.source, json.flags));
      case "Map": {
        const out = this.keep(new Map());
        for (const [k, v] of value) {
          const key = this.untag(k);
          out.set(key, this.untag(v));
        }
        return out;
      }
      case "Set": {
        const out = this.keep(new Set());
        for (const item of value) out.add(this.untag(item));
        return out;
      }
      case "ArrayBuffer":
        return this.keep(unbase64(value).buffer);
      case "Boxed": {
        // Numbered before its primitive is read, as the encoder numbered it.
        const slot = this.made.length;
        this.made.push(undefined);
        return (this.made[slot] = Object(this.untag(value)));
      }
      case "Error":
        return this.error(json);
    }
    const Typed = TYPED[json.$type];
    if (Typed === undefined) throw new TypeError(`stored value: unknown type ${JSON.stringify(json.$type)}`);
    const bytes = unbase64(value);
    if (Typed === DataView) return this.keep(new DataView(bytes.buffer));
    return this.keep(new Typed(bytes.buffer, 0, bytes.byteLength / Typed.BYTES_PER_ELEMENT));
  }

  fill(out, json) {
    for (const key of Object.keys(json)) out[key] = this.untag(json[key]);
    return out;
  }

  error(json) {
    const Type = ERRORS[json.name] ?? Error;
    const error = this.keep(new Type(json.message ?? ""));
    if (error.name !== json.name && typeof json.name === "string") error.name = json.name;
    if (typeof json.stack === "string") {
      Object.defineProperty(error, "stack", { value: json.stack, writable: true, configurable: true });
    }
    if (Object.hasOwn(json, "cause")) {
      Object.defineProperty(error, "cause", { value: this.untag(json.cause), writable: true, configurable: true });
    }
    if (json.props) this.fill(error, json.props);
    return error;
  }
}

/**
 * How a value is cloned. `refuse(instance, className)`: the error for an instance of a class
 * (absent: the instance is its own properties); `stack`: whether an error's stack is kept.
 * @typedef {{ refuse?: (value: object, name: string) => Error, stack: boolean }} Options
 */

/** What storage and WebSocket attachments keep (V8's structured clone). */
export const STORED = Object.freeze({ stack: true });

/** `value` as bytes. A JSON-shaped value is its own JSON. */
export function serialize(value, options = STORED) {
  if (typeof value === "number" && Number.isFinite(value) && !Object.is(value, -0)) {
    return encoder.encode(String(value));
  }
  if (typeof value === "string") return encoder.encode(JSON.stringify(value));
  return encoder.encode(JSON.stringify(new Tagger(options).tag(value)));
}

/** The value that `bytes` (what `serialize` made, or plain JSON stored before) stand for. */
export function deserialize(bytes) {
  const text = decoder.decode(bytes);
  const json = JSON.parse(text);
  // Only a value with a tag in it needs the walk: plain JSON is already the value.
  if (json === null || typeof json !== "object" || !text.includes('"$type"')) return json;
  return new Untagger().untag(json);
}
