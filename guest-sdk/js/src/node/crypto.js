// `node:crypto` under `nodejs_compat`: the hashes, HMACs and key derivations Cloudflare's
// node:crypto has and unenv leaves unimplemented — `createHash` (md5, sha1, sha224, sha256,
// sha384, sha512, ripemd160), `createHmac`, `hash`, `pbkdf2`/`pbkdf2Sync`, `hkdf`/`hkdfSync`,
// `randomBytes`, `randomFillSync`, `randomInt`, `timingSafeEqual`, `getHashes` — computed by
// @noble/hashes; the Web Crypto parts (`webcrypto`, `subtle`, `randomUUID`, `getRandomValues`)
// are the engine's through unenv; everything else is unenv's (ciphers, signatures: "not
// implemented").

import { Buffer } from "node:buffer";
import { hkdf as nobleHkdf } from "@noble/hashes/hkdf";
import { hmac } from "@noble/hashes/hmac";
import { md5, ripemd160, sha1 } from "@noble/hashes/legacy";
import { pbkdf2 as noblePbkdf2 } from "@noble/hashes/pbkdf2";
import { sha224, sha256, sha384, sha512 } from "@noble/hashes/sha2";
import * as unenv from "unenv/node/crypto";

export * from "unenv/node/crypto";

const HASHES = { md5, sha1, sha224, sha256, sha384, sha512, ripemd160, rmd160: ripemd160 };

function algorithm(name) {
  const hash = HASHES[String(name).toLowerCase().replace(/-/g, "")];
  if (hash === undefined) throw new Error(`Digest method not supported: ${name}`);
  return hash;
}

/** `data` (a string in `encoding`, a Buffer, a typed array, a DataView, an ArrayBuffer) as bytes. */
function bytes(data, encoding) {
  if (typeof data === "string") return Buffer.from(data, encoding ?? "utf8");
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data && typeof data.export === "function") return bytes(data.export());
  throw new TypeError(`The "data" argument must be a string, a Buffer, a TypedArray or a DataView`);
}

function output(digest, encoding) {
  const buffer = Buffer.from(digest);
  return encoding === undefined || encoding === "buffer" ? buffer : buffer.toString(encoding);
}

/** What `createHash` and `createHmac` return: `update(data[, encoding])`, `digest([encoding])`. */
class Digest {
  #state;
  #done = false;
  constructor(state) {
    this.#state = state;
  }
  update(data, encoding) {
    if (this.#done) throw new Error("Digest already called");
    this.#state.update(bytes(data, encoding));
    return this;
  }
  digest(encoding) {
    if (this.#done) throw new Error("Digest already called");
    this.#done = true;
    return output(this.#state.digest(), encoding);
  }
  copy() {
    return new this.constructor(this.#state.clone());
  }
}

export class Hash extends Digest {}
export class Hmac extends Digest {}

export function createHash(name) {
  return new Hash(algorithm(name).create());
}

export function createHmac(name, key) {
  return new Hmac(hmac.create(algorithm(name), bytes(key)));
}

/** Node 21's one-shot `crypto.hash(algorithm, data[, outputEncoding])` (hex by default). */
export function hash(name, data, encoding = "hex") {
  return output(algorithm(name)(bytes(data)), encoding);
}

export function getHashes() {
  return Object.keys(HASHES);
}

export function pbkdf2Sync(password, salt, iterations, keylen, digest) {
  const key = noblePbkdf2(algorithm(digest), bytes(password), bytes(salt), { c: iterations, dkLen: keylen });
  return Buffer.from(key);
}

/** Node's callback form of a synchronous function: `callback(error)` or `callback(null, result)`,
 * after the caller's code, as Node calls back. */
function later(callback, compute) {
  let result;
  try {
    result = compute();
  } catch (error) {
    queueMicrotask(() => callback(error));
    return;
  }
  queueMicrotask(() => callback(null, result));
}

export function pbkdf2(password, salt, iterations, keylen, digest, callback) {
  later(callback, () => pbkdf2Sync(password, salt, iterations, keylen, digest));
}

export function hkdfSync(digest, key, salt, info, keylen) {
  // An ArrayBuffer of keylen bytes (the library's output may be a view of a larger one).
  return nobleHkdf(algorithm(digest), bytes(key), bytes(salt), bytes(info), keylen).slice().buffer;
}

export function hkdf(digest, key, salt, info, keylen, callback) {
  later(callback, () => hkdfSync(digest, key, salt, info, keylen));
}

export function randomBytes(size, callback) {
  const buffer = randomFillSync(Buffer.alloc(size));
  if (typeof callback !== "function") return buffer;
  later(callback, () => buffer);
  return undefined;
}

export function randomFillSync(target, offset = 0, size) {
  const view = bytes(target);
  const end = size === undefined ? view.length : offset + size;
  for (let at = offset; at < end; at += 65536) crypto.getRandomValues(view.subarray(at, Math.min(end, at + 65536)));
  return target;
}

/** A uniformly random integer in [min, max). */
export function randomInt(min, max, callback) {
  if (max === undefined || typeof max === "function") [min, max, callback] = [0, min, max];
  const range = max - min;
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || range <= 0 || range > 2 ** 48) {
    throw new RangeError(`randomInt: expected safe integers with 0 < max - min <= 2^48`);
  }
  const limit = 2 ** 48 - (2 ** 48 % range);
  let value;
  do {
    const six = randomBytes(6);
    value = six.readUIntBE(0, 6);
  } while (value >= limit);
  const result = min + (value % range);
  if (typeof callback !== "function") return result;
  later(callback, () => result);
  return undefined;
}

export function timingSafeEqual(a, b) {
  const left = bytes(a);
  const right = bytes(b);
  if (left.length !== right.length) throw new RangeError("Input buffers must have the same byte length");
  let difference = 0;
  for (let i = 0; i < left.length; i++) difference |= left[i] ^ right[i];
  return difference === 0;
}

export default {
  ...unenv.default,
  Hash, Hmac, createHash, createHmac, hash, getHashes, pbkdf2, pbkdf2Sync, hkdf, hkdfSync,
  randomBytes, randomFillSync, randomInt, timingSafeEqual,
};
