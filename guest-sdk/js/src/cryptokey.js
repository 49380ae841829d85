// The `CryptoKey`s the SDK's WebCrypto algorithms make (`webcrypto.js`, `webcrypto_curves.js`):
// objects whose prototype is the engine's `CryptoKey`'s (so `instanceof CryptoKey` holds), with
// Web Crypto's read-only fields, and whose key material only these modules can read.

import { sha1 } from "@noble/hashes/legacy";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2";
import { base64, unbase64 } from "./clone.js";

const HASHES = { "SHA-1": sha1, "SHA-256": sha256, "SHA-384": sha384, "SHA-512": sha512 };

const material = new WeakMap();

/** A DOMException of Web Crypto's kinds (`OperationError`, `DataError`, ...). */
export function domError(message, name) {
  return new DOMException(message, name);
}

/**
 * A key of `type` ("secret", "public", "private") for `algorithm` (its public fields), holding
 * `value`; `usages` must be among `allowed`.
 */
export function makeKey(type, algorithm, value, extractable, usages, allowed) {
  for (const usage of usages) {
    if (!allowed.includes(usage)) throw domError(`Invalid key usage for ${algorithm.name}: ${usage}`, "SyntaxError");
  }
  const key = Object.create(globalThis.CryptoKey?.prototype ?? Object.prototype);
  const fields = { type, extractable: Boolean(extractable), algorithm: Object.freeze({ ...algorithm }), usages: Object.freeze([...usages]) };
  for (const [name, field] of Object.entries(fields)) Object.defineProperty(key, name, { value: field, enumerable: true });
  material.set(key, value);
  return key;
}

/** Whether `key` is one of these modules'. */
export function isOurs(key) {
  return material.has(key);
}

/** The material of `key`, checked to be for `algorithmName` and allowed `usage` (if given). */
export function materialOf(key, algorithmName, usage) {
  const value = material.get(key);
  if (value === undefined) throw domError("The key is not a key of this algorithm", "InvalidAccessError");
  if (algorithmName !== undefined && key.algorithm.name !== algorithmName) {
    throw domError(`The key is for ${key.algorithm.name}, not ${algorithmName}`, "InvalidAccessError");
  }
  if (usage !== undefined && !key.usages.includes(usage)) {
    throw domError(`The key may not be used to ${usage}`, "InvalidAccessError");
  }
  return value;
}

/** The hash an algorithm's `hash` names (`"SHA-256"` or `{ name: "SHA-256" }`). */
export function hashOf(algorithm) {
  const name = typeof algorithm.hash === "string" ? algorithm.hash : algorithm.hash?.name;
  const hash = HASHES[String(name).toUpperCase()];
  if (hash === undefined) throw domError(`Unrecognized hash: ${name}`, "NotSupportedError");
  return hash;
}

/** `data` (an ArrayBuffer or a view) as a Uint8Array of its own. */
export function bytes(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  throw new TypeError("expected an ArrayBuffer or an ArrayBuffer view");
}

/** An ArrayBuffer of exactly the bytes `view` shows (a library's output may be a view of more). */
export function exact(view) {
  return view.slice().buffer;
}

export function base64url(data) {
  return base64(data).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unbase64url(text) {
  return unbase64(String(text).replace(/-/g, "+").replace(/_/g, "/"));
}
