// `crypto.subtle` with the algorithms the JS engine lacks and Cloudflare has: AES-GCM, AES-CBC,
// AES-CTR and AES-KW (encrypt, decrypt, wrapKey, unwrapKey, generateKey, importKey and exportKey
// as raw or JWK), PBKDF2 and HKDF (deriveBits, deriveKey), computed by @noble/ciphers and
// @noble/hashes; HMAC's generateKey; and the curves of `webcrypto_curves.js` (ECDSA, ECDH,
// Ed25519, X25519). Every other algorithm goes to the engine's own SubtleCrypto. The keys made here
// are `CryptoKey`s (`instanceof` holds) whose bytes only this module can read. Imported by the
// build's entry, right after the prelude, in a bundle that uses `crypto.subtle`.

import { aeskw, cbc, ctr, gcm } from "@noble/ciphers/aes";
import { base64url, bytes, domError, exact, hashOf, isOurs, makeKey, materialOf, unbase64url } from "./cryptokey.js";
import {
  CURVE_ALGORITHMS, deriveBitsCurve, exportCurveKey, generateCurveKey, importCurveKey, normalizeName, signCurve,
  verifyCurve,
} from "./webcrypto_curves.js";
import { hkdf } from "@noble/hashes/hkdf";
import { pbkdf2 } from "@noble/hashes/pbkdf2";

const AES = new Set(["AES-GCM", "AES-CBC", "AES-CTR", "AES-KW"]);
const KDF = new Set(["PBKDF2", "HKDF"]);
const JWK_ALG = { "AES-GCM": "GCM", "AES-CBC": "CBC", "AES-CTR": "CTR", "AES-KW": "KW" };
const USAGES = {
  "AES-GCM": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
  "AES-CBC": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
  "AES-CTR": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
  "AES-KW": ["wrapKey", "unwrapKey"],
  PBKDF2: ["deriveBits", "deriveKey"],
  HKDF: ["deriveBits", "deriveKey"],
};

function normalize(algorithm) {
  const given = typeof algorithm === "string" ? { name: algorithm } : { ...algorithm };
  const name = String(given.name ?? "").toUpperCase();
  for (const known of [...AES, ...KDF]) if (known === name) given.name = known;
  return given;
}

function ours(algorithm) {
  const { name } = normalize(algorithm);
  return AES.has(name) || KDF.has(name);
}

/** A secret key of this module. */
function makeSecret(algorithm, raw, extractable, usages) {
  const fields = AES.has(algorithm.name) ? { name: algorithm.name, length: raw.length * 8 } : { name: algorithm.name };
  return makeKey("secret", fields, raw, extractable, usages, USAGES[algorithm.name]);
}

function aesLength(raw) {
  if (![16, 24, 32].includes(raw.length)) throw domError("AES keys are 128, 192 or 256 bits", "DataError");
  return raw;
}

function importOurs(format, keyData, algorithm, extractable, usages) {
  if (KDF.has(algorithm.name)) {
    if (format !== "raw") throw domError(`${algorithm.name} keys are imported as raw`, "NotSupportedError");
    if (extractable) throw domError(`${algorithm.name} keys cannot be extractable`, "SyntaxError");
    return makeSecret(algorithm, bytes(keyData), false, usages);
  }
  if (format === "raw") return makeSecret(algorithm, aesLength(bytes(keyData)), extractable, usages);
  if (format === "jwk") {
    if (keyData?.kty !== "oct" || typeof keyData.k !== "string") throw domError("expected an oct JWK", "DataError");
    const raw = aesLength(unbase64url(keyData.k));
    const expected = `A${raw.length * 8}${JWK_ALG[algorithm.name]}`;
    if (keyData.alg !== undefined && keyData.alg !== expected) {
      throw domError(`The JWK's alg is ${keyData.alg}, not ${expected}`, "DataError");
    }
    return makeSecret(algorithm, raw, extractable, usages);
  }
  throw domError(`${algorithm.name} keys are imported as raw or jwk`, "NotSupportedError");
}

function exportOurs(format, key) {
  const raw = materialOf(key);
  if (!key.extractable) throw domError("The key is not extractable", "InvalidAccessError");
  if (format === "raw") return raw.slice().buffer;
  if (format === "jwk" && AES.has(key.algorithm.name)) {
    return {
      kty: "oct", k: base64url(raw), alg: `A${raw.length * 8}${JWK_ALG[key.algorithm.name]}`,
      ext: true, key_ops: [...key.usages],
    };
  }
  throw domError(`${key.algorithm.name} keys are exported as raw${AES.has(key.algorithm.name) ? " or jwk" : ""}`, "NotSupportedError");
}

function cipherOf(algorithm, raw) {
  switch (algorithm.name) {
    case "AES-GCM": {
      const tagLength = algorithm.tagLength ?? 128;
      if (tagLength !== 128) throw domError("AES-GCM: only 128-bit tags are supported by duro", "NotSupportedError");
      const aad = algorithm.additionalData === undefined ? undefined : bytes(algorithm.additionalData);
      return gcm(raw, bytes(algorithm.iv), aad);
    }
    case "AES-CBC":
      return cbc(raw, bytes(algorithm.iv));
    case "AES-CTR":
      return ctr(raw, bytes(algorithm.counter));
    case "AES-KW":
      return aeskw(raw);
  }
  throw domError(`Unrecognized algorithm ${algorithm.name}`, "NotSupportedError");
}

/** `usage` (encrypt, decrypt, wrapKey, unwrapKey) of `data` with `key`. */
function crypt(usage, algorithm, key, data) {
  const raw = materialOf(key, algorithm.name, usage);
  const direction = usage === "encrypt" || usage === "wrapKey" ? "encrypt" : "decrypt";
  try {
    return exact(cipherOf(algorithm, raw)[direction](bytes(data)));
  } catch (error) {
    if (error instanceof DOMException) throw error;
    throw domError(direction === "decrypt" ? "Decryption failed" : String(error.message), "OperationError");
  }
}

function deriveBitsOurs(algorithm, baseKey, length) {
  const raw = materialOf(baseKey, algorithm.name);
  if (!baseKey.usages.includes("deriveBits") && !baseKey.usages.includes("deriveKey")) {
    throw domError("The key may not be used to derive bits", "InvalidAccessError");
  }
  if (!Number.isInteger(length) || length <= 0 || length % 8 !== 0) {
    throw domError("The length must be a positive multiple of 8", "OperationError");
  }
  const dkLen = length / 8;
  if (algorithm.name === "PBKDF2") {
    if (!(algorithm.iterations > 0)) throw domError("PBKDF2 needs iterations > 0", "OperationError");
    return exact(pbkdf2(hashOf(algorithm), raw, bytes(algorithm.salt), { c: algorithm.iterations, dkLen }));
  }
  return exact(hkdf(hashOf(algorithm), raw, bytes(algorithm.salt), bytes(algorithm.info), dkLen));
}

/** The bits a derived key of `algorithm` needs. */
function lengthOf(algorithm) {
  if (AES.has(algorithm.name)) return algorithm.length;
  // HMAC's default length is its hash's block size.
  if (String(algorithm.name).toUpperCase() === "HMAC") return algorithm.length ?? hashOf(algorithm).blockLen * 8;
  throw domError(`Cannot derive a key for ${algorithm.name}`, "NotSupportedError");
}

/** Whether `key` is one of the curve algorithms' (`webcrypto_curves.js`). */
function curveKey(key) {
  return CURVE_ALGORITHMS.has(key.algorithm.name);
}

function isCurve(algorithm) {
  const name = typeof algorithm === "string" ? algorithm : algorithm?.name;
  return CURVE_ALGORITHMS.has(normalizeName(name));
}

function given(algorithm) {
  return typeof algorithm === "string" ? { name: algorithm } : algorithm;
}

const subtle = globalThis.crypto?.subtle;
if (subtle) {
  const native = {};
  const NAMES = ["encrypt", "decrypt", "sign", "verify", "importKey", "exportKey", "generateKey", "deriveBits", "deriveKey", "wrapKey", "unwrapKey"];
  for (const name of NAMES) native[name] = typeof subtle[name] === "function" ? subtle[name].bind(subtle) : undefined;
  const nativeCall = (name, args) => {
    if (native[name] === undefined) return Promise.reject(domError(`crypto.subtle.${name} is not supported`, "NotSupportedError"));
    return native[name](...args);
  };
  const ourKey = (key) => isOurs(key);
  /** Runs `f` as a promise, its throws as rejections (SubtleCrypto never throws). */
  const settle = (f) => new Promise((resolve) => resolve(f()));
  const deriveBits = (algorithm, baseKey, length) =>
    curveKey(baseKey) ? deriveBitsCurve(given(algorithm), baseKey, length) : deriveBitsOurs(normalize(algorithm), baseKey, length);
  const methods = {
    encrypt: (algorithm, key, data) =>
      ourKey(key) ? settle(() => crypt("encrypt", normalize(algorithm), key, data)) : nativeCall("encrypt", [algorithm, key, data]),
    decrypt: (algorithm, key, data) =>
      ourKey(key) ? settle(() => crypt("decrypt", normalize(algorithm), key, data)) : nativeCall("decrypt", [algorithm, key, data]),
    sign: (algorithm, key, data) =>
      ourKey(key) ? settle(() => signCurve(given(algorithm), key, data)) : nativeCall("sign", [algorithm, key, data]),
    verify: (algorithm, key, signature, data) =>
      ourKey(key)
        ? settle(() => verifyCurve(given(algorithm), key, signature, data))
        : nativeCall("verify", [algorithm, key, signature, data]),
    importKey: (format, keyData, algorithm, extractable, usages) => {
      if (isCurve(algorithm)) return settle(() => importCurveKey(format, keyData, given(algorithm), extractable, usages));
      if (ours(algorithm)) return settle(() => importOurs(format, keyData, normalize(algorithm), extractable, usages));
      return nativeCall("importKey", [format, keyData, algorithm, extractable, usages]);
    },
    exportKey: (format, key) => {
      if (!ourKey(key)) return nativeCall("exportKey", [format, key]);
      return settle(() => (curveKey(key) ? exportCurveKey(format, key) : exportOurs(format, key)));
    },
    generateKey: (algorithm, extractable, usages) => {
      if (isCurve(algorithm)) return settle(() => generateCurveKey(given(algorithm), extractable, usages));
      const wanted = normalize(algorithm);
      if (String(wanted.name).toUpperCase() === "HMAC") {
        // The engine imports HMAC keys but cannot make them: random bytes of the hash's block.
        return settle(() => {
          const length = lengthOf(wanted);
          const raw = crypto.getRandomValues(new Uint8Array(Math.ceil(length / 8)));
          return methods.importKey("raw", raw, algorithm, extractable, usages);
        });
      }
      if (!AES.has(wanted.name)) return nativeCall("generateKey", [algorithm, extractable, usages]);
      return settle(() => {
        if (![128, 192, 256].includes(wanted.length)) throw domError("AES keys are 128, 192 or 256 bits", "OperationError");
        return makeSecret(wanted, crypto.getRandomValues(new Uint8Array(wanted.length / 8)), extractable, usages);
      });
    },
    deriveBits: (algorithm, baseKey, length) =>
      ourKey(baseKey) ? settle(() => deriveBits(algorithm, baseKey, length)) : nativeCall("deriveBits", [algorithm, baseKey, length]),
    deriveKey: async (algorithm, baseKey, derived, extractable, usages) => {
      if (!ourKey(baseKey)) return nativeCall("deriveKey", [algorithm, baseKey, derived, extractable, usages]);
      const bits = deriveBits(algorithm, baseKey, lengthOf(normalize(derived)));
      return methods.importKey("raw", bits, derived, extractable, usages);
    },
    wrapKey: async (format, key, wrappingKey, algorithm) => {
      if (!ourKey(wrappingKey)) return nativeCall("wrapKey", [format, key, wrappingKey, algorithm]);
      const exported = await methods.exportKey(format, key);
      const data = format === "jwk" ? new TextEncoder().encode(JSON.stringify(exported)) : exported;
      return crypt("wrapKey", normalize(algorithm), wrappingKey, data);
    },
    unwrapKey: async (format, wrapped, unwrappingKey, unwrapAlgorithm, keyAlgorithm, extractable, usages) => {
      if (!ourKey(unwrappingKey)) {
        return nativeCall("unwrapKey", [format, wrapped, unwrappingKey, unwrapAlgorithm, keyAlgorithm, extractable, usages]);
      }
      const data = crypt("unwrapKey", normalize(unwrapAlgorithm), unwrappingKey, wrapped);
      const keyData = format === "jwk" ? JSON.parse(new TextDecoder().decode(data)) : data;
      return methods.importKey(format, keyData, keyAlgorithm, extractable, usages);
    },
  };
  for (const [name, value] of Object.entries(methods)) {
    Object.defineProperty(subtle, name, { value, configurable: true, writable: true });
  }
}
