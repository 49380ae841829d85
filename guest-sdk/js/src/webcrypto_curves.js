// Web Crypto's elliptic-curve algorithms, which the JS engine lacks (its ECDSA import traps):
// ECDSA and ECDH on P-256, P-384 and P-521, Ed25519 and X25519 — generateKey, importKey and
// exportKey (raw public keys, JWK, SPKI, PKCS #8), sign and verify, deriveBits — computed by
// @noble/curves, keys as in `cryptokey.js`. `webcrypto.js` routes these algorithms here.

import { ed25519, x25519 } from "@noble/curves/ed25519";
import { p256, p384, p521 } from "@noble/curves/nist";
import { base64url, bytes, domError, exact, hashOf, makeKey, materialOf, unbase64url } from "./cryptokey.js";

export const CURVE_ALGORITHMS = new Set(["ECDSA", "ECDH", "Ed25519", "X25519"]);

const NIST = {
  "P-256": { curve: p256, size: 32, oid: [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] },
  "P-384": { curve: p384, size: 48, oid: [0x2b, 0x81, 0x04, 0x00, 0x22] },
  "P-521": { curve: p521, size: 66, oid: [0x2b, 0x81, 0x04, 0x00, 0x23] },
};
const EC_PUBLIC_KEY = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OKP = {
  Ed25519: { oid: [0x2b, 0x65, 0x70], publicOf: (d) => ed25519.getPublicKey(d), random: () => ed25519.utils.randomPrivateKey() },
  X25519: { oid: [0x2b, 0x65, 0x6e], publicOf: (d) => x25519.getPublicKey(d), random: () => x25519.utils.randomPrivateKey() },
};
const USAGES = {
  ECDSA: { public: ["verify"], private: ["sign"] },
  Ed25519: { public: ["verify"], private: ["sign"] },
  ECDH: { public: [], private: ["deriveBits", "deriveKey"] },
  X25519: { public: [], private: ["deriveBits", "deriveKey"] },
};

// DER, as far as SPKI and PKCS #8 keys need it.
function tlv(tag, ...parts) {
  const content = concat(...parts);
  const n = content.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return concat([tag], length, content);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The TLVs in `data` (each `{ tag, value }`). */
function parse(data) {
  const out = [];
  for (let at = 0; at < data.length; ) {
    const tag = data[at];
    let length = data[at + 1];
    let start = at + 2;
    if (length & 0x80) {
      const count = length & 0x7f;
      if (count === 0 || count > 3) throw domError("malformed DER", "DataError");
      length = 0;
      for (let i = 0; i < count; i++) length = (length << 8) | data[start + i];
      start += count;
    }
    if (start + length > data.length) throw domError("malformed DER", "DataError");
    out.push({ tag, value: data.subarray(start, start + length) });
    at = start + length;
  }
  return out;
}

function one(data, tag) {
  const [node] = parse(data);
  if (node === undefined || node.tag !== tag) throw domError("malformed key", "DataError");
  return node.value;
}

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

function normalizeName(name) {
  const upper = String(name).toUpperCase();
  return upper === "ED25519" ? "Ed25519" : upper === "X25519" ? "X25519" : upper;
}

function curveOf(algorithm) {
  const entry = NIST[algorithm.namedCurve];
  if (entry === undefined) throw domError(`Unrecognized namedCurve: ${algorithm.namedCurve}`, "NotSupportedError");
  return entry;
}

function publicFields(algorithm) {
  return OKP[algorithm.name] ? { name: algorithm.name } : { name: algorithm.name, namedCurve: algorithm.namedCurve };
}

function makeCurveKey(type, algorithm, value, extractable, usages) {
  return makeKey(type, publicFields(algorithm), value, extractable, usages, USAGES[algorithm.name][type]);
}

/** A NIST point as its uncompressed bytes (it must be on the curve). */
function point(entry, data) {
  try {
    return entry.curve.ProjectivePoint.fromHex(data).toRawBytes(false);
  } catch {
    throw domError("The public key is not a point of the curve", "DataError");
  }
}

function fromSpki(algorithm, data) {
  const [id, key] = parse(one(data, 0x30));
  const [alg, params] = parse(id.value);
  if (key?.tag !== 0x03 || key.value[0] !== 0) throw domError("malformed SPKI", "DataError");
  const raw = key.value.subarray(1);
  if (OKP[algorithm.name]) {
    if (!same(alg.value, OKP[algorithm.name].oid) || raw.length !== 32) throw domError(`not an ${algorithm.name} key`, "DataError");
    return { public: raw.slice() };
  }
  const entry = curveOf(algorithm);
  if (!same(alg.value, EC_PUBLIC_KEY) || !params || !same(params.value, entry.oid)) {
    throw domError(`not a ${algorithm.namedCurve} key`, "DataError");
  }
  return { public: point(entry, raw) };
}

function fromPkcs8(algorithm, data) {
  const [, id, key] = parse(one(data, 0x30));
  const [alg, params] = parse(id.value);
  if (key?.tag !== 0x04) throw domError("malformed PKCS #8", "DataError");
  if (OKP[algorithm.name]) {
    const okp = OKP[algorithm.name];
    if (!same(alg.value, okp.oid)) throw domError(`not an ${algorithm.name} key`, "DataError");
    const d = one(key.value, 0x04);
    if (d.length !== 32) throw domError("malformed private key", "DataError");
    return { private: d.slice(), public: okp.publicOf(d) };
  }
  const entry = curveOf(algorithm);
  if (!same(alg.value, EC_PUBLIC_KEY) || !params || !same(params.value, entry.oid)) {
    throw domError(`not a ${algorithm.namedCurve} key`, "DataError");
  }
  const [, d] = parse(one(key.value, 0x30));
  if (d?.tag !== 0x04) throw domError("malformed EC private key", "DataError");
  return { private: d.value.slice(), public: entry.curve.getPublicKey(d.value, false) };
}

function fromJwk(algorithm, jwk) {
  if (OKP[algorithm.name]) {
    if (jwk?.kty !== "OKP" || jwk.crv !== algorithm.name) throw domError(`expected an OKP JWK of ${algorithm.name}`, "DataError");
    const x = unbase64url(jwk.x);
    if (jwk.d === undefined) return { public: x };
    const d = unbase64url(jwk.d);
    const pub = OKP[algorithm.name].publicOf(d);
    if (!same(pub, x)) throw domError("the JWK's x is not its d's public key", "DataError");
    return { private: d, public: pub };
  }
  const entry = curveOf(algorithm);
  if (jwk?.kty !== "EC" || jwk.crv !== algorithm.namedCurve) throw domError(`expected an EC JWK on ${algorithm.namedCurve}`, "DataError");
  const pub = point(entry, concat([4], unbase64url(jwk.x), unbase64url(jwk.y)));
  if (jwk.d === undefined) return { public: pub };
  const d = unbase64url(jwk.d);
  if (!same(entry.curve.getPublicKey(d, false), pub)) throw domError("the JWK's x and y are not its d's public key", "DataError");
  return { private: d, public: pub };
}

export function importCurveKey(format, keyData, given, extractable, usages) {
  const algorithm = { ...given, name: normalizeName(given.name) };
  let value;
  if (format === "raw") {
    const data = bytes(keyData);
    if (OKP[algorithm.name]) {
      if (data.length !== 32) throw domError(`${algorithm.name} public keys are 32 bytes`, "DataError");
      value = { public: data };
    } else value = { public: point(curveOf(algorithm), data) };
  } else if (format === "spki") value = fromSpki(algorithm, bytes(keyData));
  else if (format === "pkcs8") value = fromPkcs8(algorithm, bytes(keyData));
  else if (format === "jwk") value = fromJwk(algorithm, keyData);
  else throw domError(`Unrecognized key format: ${format}`, "NotSupportedError");
  const type = value.private ? "private" : "public";
  return makeCurveKey(type, algorithm, value, type === "public" ? true : extractable, usages);
}

function algorithmId(algorithm) {
  if (OKP[algorithm.name]) return tlv(0x30, tlv(0x06, OKP[algorithm.name].oid));
  return tlv(0x30, tlv(0x06, EC_PUBLIC_KEY), tlv(0x06, curveOf(algorithm).oid));
}

export function exportCurveKey(format, key) {
  const value = materialOf(key);
  if (!key.extractable) throw domError("The key is not extractable", "InvalidAccessError");
  const { algorithm } = key;
  const isPrivate = key.type === "private";
  switch (format) {
    case "raw":
      if (isPrivate) throw domError("Only public keys are exported as raw", "InvalidAccessError");
      return exact(value.public);
    case "spki":
      if (isPrivate) throw domError("Only public keys are exported as spki", "InvalidAccessError");
      return exact(tlv(0x30, algorithmId(algorithm), tlv(0x03, [0], value.public)));
    case "pkcs8": {
      if (!isPrivate) throw domError("Only private keys are exported as pkcs8", "InvalidAccessError");
      const inner = OKP[algorithm.name]
        ? tlv(0x04, value.private)
        : tlv(0x30, tlv(0x02, [1]), tlv(0x04, value.private), tlv(0xa1, tlv(0x03, [0], value.public)));
      return exact(tlv(0x30, tlv(0x02, [0]), algorithmId(algorithm), tlv(0x04, inner)));
    }
    case "jwk": {
      const jwk = OKP[algorithm.name]
        ? { kty: "OKP", crv: algorithm.name, x: base64url(value.public) }
        : (() => {
            const size = curveOf(algorithm).size;
            return {
              kty: "EC", crv: algorithm.namedCurve,
              x: base64url(value.public.subarray(1, 1 + size)), y: base64url(value.public.subarray(1 + size)),
            };
          })();
      if (isPrivate) jwk.d = base64url(value.private);
      return { ...jwk, ext: true, key_ops: [...key.usages] };
    }
  }
  throw domError(`Unrecognized key format: ${format}`, "NotSupportedError");
}

export function generateCurveKey(given, extractable, usages) {
  const algorithm = { ...given, name: normalizeName(given.name) };
  let value;
  if (OKP[algorithm.name]) {
    const d = OKP[algorithm.name].random();
    value = { private: d, public: OKP[algorithm.name].publicOf(d) };
  } else {
    const { curve } = curveOf(algorithm);
    const d = curve.utils.randomPrivateKey();
    value = { private: d, public: curve.getPublicKey(d, false) };
  }
  const allowed = USAGES[algorithm.name];
  return {
    publicKey: makeCurveKey("public", algorithm, { public: value.public }, true, usages.filter((u) => allowed.public.includes(u))),
    privateKey: makeCurveKey("private", algorithm, value, extractable, usages.filter((u) => allowed.private.includes(u))),
  };
}

export function signCurve(given, key, data) {
  const name = normalizeName(given.name);
  const value = materialOf(key, name, "sign");
  if (name === "Ed25519") return exact(ed25519.sign(bytes(data), value.private));
  const { curve } = curveOf(key.algorithm);
  const signature = curve.sign(hashOf(given)(bytes(data)), value.private, { lowS: false, prehash: false });
  return exact(signature.toCompactRawBytes());
}

export function verifyCurve(given, key, signature, data) {
  const name = normalizeName(given.name);
  const value = materialOf(key, name, "verify");
  try {
    if (name === "Ed25519") return ed25519.verify(bytes(signature), bytes(data), value.public);
    const { curve } = curveOf(key.algorithm);
    const parsed = curve.Signature.fromCompact(bytes(signature));
    return curve.verify(parsed, hashOf(given)(bytes(data)), value.public, { lowS: false, prehash: false });
  } catch {
    return false;
  }
}

export function deriveBitsCurve(given, baseKey, length) {
  const name = normalizeName(given.name);
  const value = materialOf(baseKey, name);
  if (baseKey.type !== "private") throw domError("deriveBits needs the private key", "InvalidAccessError");
  const peer = given.public;
  const other = materialOf(peer, name);
  let shared;
  if (name === "X25519") shared = x25519.getSharedSecret(value.private, other.public);
  else {
    if (peer.algorithm.namedCurve !== baseKey.algorithm.namedCurve) throw domError("The keys are on different curves", "InvalidAccessError");
    shared = curveOf(baseKey.algorithm).curve.getSharedSecret(value.private, other.public, true).subarray(1);
  }
  if (length === null || length === undefined) return exact(shared);
  if (length > shared.length * 8 || length % 8 !== 0) throw domError("The length is too long or not whole bytes", "OperationError");
  return exact(shared.subarray(0, length / 8));
}

export { normalizeName };
