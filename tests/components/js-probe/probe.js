// A JavaScript test class (tests/languages.rs): each route exercises one part of the JS SDK's
// Durable Object API and answers what it saw as JSON.

import { DurableObject, WebSocketRequestResponsePair } from "duro:workers";
import { sqlApi, sqlCount, sqlRead } from "./sql.js";

/** A Map as a plain object, in order. */
const plain = (map) => Object.fromEntries(map);

/** What a failing call threw: its kind and message. */
// A class lowered from a TC39 decorator: its name must survive the bundle (wrangler keeps names).
function tagged(value) {
  return value;
}
@tagged
class Decorated {}

/** The name and message of what `f` throws (null when it does not). */
function thrownName(f) {
  try {
    f();
    return null;
  } catch (error) {
    return error.name;
  }
}

async function failure(f) {
  try {
    await f();
    return null;
  } catch (error) {
    return { kind: error.kind ?? null, message: String(error.message) };
  }
}

/** One value of every type structured clone keeps (the RPC and storage tests send and store it). */
function sample() {
  return {
    text: "é\u0000", int: 7, float: 1.5, negZero: -0, nan: NaN, inf: -Infinity, nil: null,
    undef: undefined, yes: true, big: 12345678901234567890n, date: new Date(1700000000000),
    map: new Map([[1, "one"], ["k", { nested: [1, 2] }]]), set: new Set(["a", 3]),
    bytes: new Uint8Array([0, 1, 255]), buffer: new Uint16Array([513, 65535]).buffer,
    floats: new Float64Array([0.5, -2]), regexp: /a+b/gi, error: new RangeError("out of range"),
    tricky: { $type: "Date", value: "not a date" }, list: [1, [2, [3]]],
  };
}

/** Which of `sample()`'s values `back` kept, by name. */
function sameAs(back) {
  return {
    text: back.text === "é\u0000", int: back.int === 7, float: back.float === 1.5,
    negZero: Object.is(back.negZero, -0), nan: Number.isNaN(back.nan), inf: back.inf === -Infinity,
    nil: back.nil === null, undef: "undef" in back && back.undef === undefined, yes: back.yes === true,
    big: back.big === 12345678901234567890n, date: back.date instanceof Date && back.date.getTime() === 1700000000000,
    map: back.map instanceof Map && back.map.get(1) === "one" && back.map.get("k").nested[1] === 2,
    set: back.set instanceof Set && back.set.has("a") && back.set.has(3),
    bytes: back.bytes instanceof Uint8Array && back.bytes.join() === "0,1,255",
    buffer: back.buffer instanceof ArrayBuffer && new Uint16Array(back.buffer).join() === "513,65535",
    floats: back.floats instanceof Float64Array && back.floats.join() === "0.5,-2",
    regexp: back.regexp instanceof RegExp && back.regexp.source === "a+b" && back.regexp.flags === "gi",
    error: back.error instanceof RangeError && back.error.message === "out of range",
    tricky: back.tricky.$type === "Date" && back.tricky.value === "not a date",
    list: JSON.stringify(back.list) === "[1,[2,[3]]]",
  };
}

/** A value with a shared object, a cycle, a class instance and an error with a cause and fields. */
function graph() {
  class Point {
    constructor() {
      this.x = 1;
    }
    get doubled() {
      return this.x * 2;
    }
  }
  const shared = { n: 1 };
  const cyclic = { name: "loop" };
  cyclic.self = cyclic;
  const error = new TypeError("outer", { cause: new Error("inner") });
  error.code = "E_OUTER";
  return { a: shared, b: [shared], cyclic, point: new Point(), error, boxed: new String("s") };
}

/** Which parts of `graph()` `back` kept. */
function graphKept(back) {
  return {
    shared: back.a === back.b[0] && back.a.n === 1,
    cycle: back.cyclic.self === back.cyclic,
    instance: Object.getPrototypeOf(back.point) === Object.prototype && back.point.x === 1 && !("doubled" in back.point),
    error:
      back.error instanceof TypeError && back.error.message === "outer" && back.error.code === "E_OUTER" &&
      back.error.cause instanceof Error && back.error.cause.message === "inner" && typeof back.error.stack === "string",
    boxed: back.boxed instanceof String && String(back.boxed) === "s",
  };
}

/** The name and message of what `f` threw, or null. */
async function errorOf(f) {
  try {
    await f();
    return null;
  } catch (error) {
    return { name: error?.name, message: String(error?.message) };
  }
}

export class Probe extends DurableObject {
  async fetch(request) {
    const url = new URL(request.url);
    const storage = this.ctx.storage;
    switch (url.pathname) {
      case "/storage": {
        const out = {};
        await storage.put("a", 1);
        await storage.put({ b: { nested: [true, null] }, c: "three", "user:1": "ann", "user:2": "bob" });
        out.get = await storage.get("b");
        out.missing = (await storage.get("nope")) ?? "undefined";
        out.getMany = plain(await storage.get(["a", "c", "nope"]));
        out.list = plain(await storage.list());
        out.prefix = [...(await storage.list({ prefix: "user:" })).keys()];
        out.range = [...(await storage.list({ start: "b", end: "user:1" })).keys()];
        out.startAfter = [...(await storage.list({ startAfter: "b", limit: 2 })).keys()];
        out.reverse = [...(await storage.list({ reverse: true, limit: 2 })).keys()];
        out.deleted = await storage.delete("a");
        out.deletedAgain = await storage.delete("a");
        out.deletedMany = await storage.delete(["c", "nope", "user:2"]);
        out.kept = await storage.transaction(async (txn) => {
          await txn.put("t", 1);
          return (await txn.get("t")) + 1;
        });
        out.thrown = await failure(() =>
          storage.transaction(async (txn) => {
            await txn.put("gone", 1);
            throw new Error("no thanks");
          }),
        );
        await storage.transaction(async (txn) => {
          await txn.put("gone-too", 1);
          txn.rollback();
        });
        out.afterTransactions = [...(await storage.list()).keys()];
        out.tooLarge = await failure(() => storage.put("big", "x".repeat(200_000)));
        out.undefinedValue = await failure(() => storage.put("u", undefined));
        // Options Cloudflare refuses, with its errors; `undefined` in a batch is skipped.
        out.refusedOptions = {
          negative: await errorOf(() => storage.list({ limit: -1 })),
          zero: await errorOf(() => storage.list({ limit: 0 })),
          both: await errorOf(() => storage.list({ start: "a", startAfter: "b" })),
          key: await errorOf(() => storage.put("k".repeat(2049), 1)),
          value: await errorOf(() => storage.put("big", "x".repeat(200_000))),
          many: await errorOf(() => storage.get(Array.from({ length: 129 }, (_, i) => `k${i}`))),
        };
        await storage.put({ skipped: undefined, numbered: 1 });
        out.skipped = (await storage.get(["skipped", "numbered"])).size;
        await storage.delete("numbered");
        out.alarmBefore = await storage.getAlarm();
        await storage.setAlarm(new Date(Date.now() + 3_600_000));
        out.alarmSet = (await storage.getAlarm()) - Date.now();
        await storage.deleteAlarm();
        out.alarmAfter = await storage.getAlarm();
        await storage.deleteAll();
        out.afterDeleteAll = (await storage.list()).size;
        return Response.json(out);
      }
      case "/clone-put": {
        // Stores every type structured clone keeps; /clone-get reads them in a later event.
        await storage.put("sample", sample());
        await storage.put({ graph: graph(), many: new Set([1n]) });
        storage.kv.put("kv", new Map([["d", new Date(5)]]));
        const refused = {
          fn: await errorOf(() => storage.put("fn", () => 1)),
          symbol: await errorOf(() => storage.put("sym", Symbol("s"))),
          // One bad value in a batch writes nothing of it.
          batch: await errorOf(() => storage.put({ fine: 1, bad: { deep: [Symbol("s")] } })),
          request: await errorOf(() => storage.put("req", new Request("http://x/"))),
          kv: errorOf(() => storage.kv.put("kvfn", function named() {})),
        };
        refused.kv = await refused.kv;
        refused.written = [...(await storage.list()).keys()];
        return Response.json(refused);
      }
      case "/clone-get": {
        const listed = await storage.list();
        const kv = storage.kv.get("kv");
        const fromKvList = new Map(storage.kv.list({ prefix: "kv" })).get("kv");
        return Response.json({
          sample: sameAs(await storage.get("sample")),
          graph: graphKept(await storage.get("graph")),
          many: (await storage.get(["many"])).get("many").has(1n),
          listed: listed.get("graph").cyclic.self === listed.get("graph").cyclic,
          kv: kv instanceof Map && kv.get("d") instanceof Date && kv.get("d").getTime() === 5,
          kvList: fromKvList instanceof Map && fromKvList.get("d").getTime() === 5,
          inTransaction: await storage.transaction(async (txn) => {
            await txn.put("t", new Date(7));
            return (await txn.get("t")).getTime() === 7;
          }),
        });
      }
      case "/web-apis": {
        // Web and Workers APIs libraries use, each as Cloudflare behaves.
        const out = {};
        const controller = new AbortController();
        out.notAborted = await errorOf(() => controller.signal.throwIfAborted());
        controller.abort(new RangeError("stop"));
        out.aborted = await errorOf(() => controller.signal.throwIfAborted());
        out.abortedDefault = await errorOf(() => AbortSignal.abort().throwIfAborted());
        const form = new FormData();
        form.append("file", new File([new Uint8Array([0, 128, 255])], "f.bin"));
        form.append("blob", new Blob([new Uint8Array([1, 2])]));
        const file = form.get("file");
        out.formFile = [file instanceof File, file.name, [...new Uint8Array(await file.arrayBuffer())]];
        const parsed = await new Response(form).formData();
        out.formRoundTrip = [...new Uint8Array(await parsed.get("file").arrayBuffer())];
        const started = Date.now();
        await scheduler.wait(20);
        out.waited = Date.now() - started >= 15;
        out.jurisdiction = this.env.PROBE.jurisdiction("eu").idFromName("x").toString() === this.env.PROBE.idFromName("x").toString();
        out.structuredClone = structuredClone(new Map([[1, new Date(3)]])).get(1).getTime();
        return Response.json(out);
      }
      case "/webcrypto": {
        // Algorithms the engine lacks, with the answers Node's WebCrypto gives for the same input.
        const subtle = crypto.subtle;
        const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
        const text = new TextEncoder().encode("hello duro");
        const raw = new Uint8Array(32).map((_, i) => i);
        const iv = new Uint8Array(12).map((_, i) => i + 1);
        const gcmKey = await subtle.importKey("raw", raw, "AES-GCM", true, ["encrypt", "decrypt"]);
        const gcmParams = { name: "AES-GCM", iv, additionalData: new TextEncoder().encode("aad") };
        const sealed = await subtle.encrypt(gcmParams, gcmKey, text);
        const opened = new TextDecoder().decode(await subtle.decrypt(gcmParams, gcmKey, sealed));
        const tampered = new Uint8Array(sealed.slice(0));
        tampered[0] ^= 1;
        const cbcKey = await subtle.importKey("raw", raw.slice(0, 16), "AES-CBC", true, ["encrypt"]);
        const ctrKey = await subtle.importKey("raw", raw.slice(0, 16), { name: "AES-CTR" }, true, ["encrypt"]);
        const kek = await subtle.importKey("raw", raw.slice(0, 16), "AES-KW", true, ["wrapKey", "unwrapKey"]);
        const wrapped = await subtle.wrapKey("raw", gcmKey, kek, "AES-KW");
        const unwrapped = await subtle.unwrapKey("raw", wrapped, kek, "AES-KW", "AES-GCM", true, ["decrypt"]);
        const password = await subtle.importKey("raw", new TextEncoder().encode("password"), "PBKDF2", false, ["deriveBits", "deriveKey"]);
        const pbkdf2 = { name: "PBKDF2", salt: new TextEncoder().encode("salt"), iterations: 2, hash: "SHA-256" };
        const derived = await subtle.deriveKey(pbkdf2, password, { name: "AES-GCM", length: 256 }, true, ["encrypt"]);
        const ikm = await subtle.importKey("raw", new Uint8Array(22).fill(11), "HKDF", false, ["deriveBits"]);
        const hkdf = {
          name: "HKDF", hash: "SHA-256", salt: new Uint8Array(13).map((_, i) => i), info: new Uint8Array(10).map((_, i) => 0xf0 + i),
        };
        const generated = await subtle.generateKey({ name: "AES-GCM", length: 128 }, true, ["encrypt"]);
        const hmacKey = await subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
        return Response.json({
          gcm: hex(sealed),
          opened,
          tampered: (await errorOf(() => subtle.decrypt(gcmParams, gcmKey, tampered)))?.name ?? null,
          cbc: hex(await subtle.encrypt({ name: "AES-CBC", iv: new Uint8Array(16) }, cbcKey, text)),
          ctr: hex(await subtle.encrypt({ name: "AES-CTR", counter: new Uint8Array(16), length: 64 }, ctrKey, text)),
          wrapped: hex(wrapped),
          unwrapped: new TextDecoder().decode(await subtle.decrypt(gcmParams, unwrapped, sealed)),
          pbkdf2: hex(await subtle.deriveBits(pbkdf2, password, 256)),
          derived: hex(await subtle.exportKey("raw", derived)),
          hkdf: hex(await subtle.deriveBits(hkdf, ikm, 336)),
          generated: [generated instanceof CryptoKey, (await subtle.exportKey("jwk", generated)).alg, generated.algorithm.length],
          hmac: (await subtle.sign("HMAC", hmacKey, text)).byteLength,
        });
      }
      case "/webcrypto-curves": {
        // ECDSA, ECDH, Ed25519 and X25519 (the engine's ECDSA import traps): RFC 8032's and RFC
        // 7748's test vectors, a signature Node's WebCrypto made, and round trips.
        const subtle = crypto.subtle;
        const unhex = (text) => Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
        const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
        const text = new TextEncoder().encode("hello duro");
        const edSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        const edPublic = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        const edSignature =
          "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        const edPriv = await subtle.importKey("pkcs8", unhex(`302e020100300506032b657004220420${edSeed}`), "Ed25519", true, ["sign"]);
        const edPub = await subtle.importKey("raw", unhex(edPublic), { name: "Ed25519" }, true, ["verify"]);
        const xPriv = await subtle.importKey(
          "pkcs8", unhex("302e020100300506032b656e0422042077076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
          "X25519", false, ["deriveBits"],
        );
        const xPub = await subtle.importKey("raw", unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), "X25519", true, []);
        const ecdsa = { name: "ECDSA", namedCurve: "P-256" };
        const nodePub = await subtle.importKey("spki", unhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004b92e508f6ae176d6f397201c58de152e7bee495af3d48e053b29d16c8dae2eb00b16ab5910c0bcdbdfef9f614b8d1981cfa055987faf0557898189ac4dbaed81"), ecdsa, true, ["verify"]);
        const pair = await subtle.generateKey(ecdsa, true, ["sign", "verify"]);
        const signed = await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, text);
        const jwk = await subtle.exportKey("jwk", pair.publicKey);
        const again = await subtle.importKey("jwk", jwk, ecdsa, true, ["verify"]);
        const a = await subtle.generateKey({ name: "ECDH", namedCurve: "P-384" }, false, ["deriveBits"]);
        const b = await subtle.generateKey({ name: "ECDH", namedCurve: "P-384" }, false, ["deriveBits"]);
        return Response.json({
          ed25519: [
            hex(await subtle.sign("Ed25519", edPriv, new Uint8Array(0))) === edSignature,
            await subtle.verify("Ed25519", edPub, unhex(edSignature), new Uint8Array(0)),
            await subtle.verify("Ed25519", edPub, unhex(edSignature), text),
          ],
          x25519: hex(await subtle.deriveBits({ name: "X25519", public: xPub }, xPriv, 256)),
          ecdsaNode: await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, nodePub, unhex("9e91e91ae7121be626680da980f77124f26420a8e5454f86a38cdfbde33f70469736fded64d9fe466af3917768b6d7993e8865ae49ea42f3d966996b678cca1f"), text),
          ecdsa: [
            signed.byteLength,
            await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, again, signed, text),
            await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, again, signed, new TextEncoder().encode("other")),
            jwk.kty, jwk.crv, pair.privateKey instanceof CryptoKey, pair.privateKey.type,
          ],
          ecdh: hex(await subtle.deriveBits({ name: "ECDH", public: b.publicKey }, a.privateKey, 384)) ===
            hex(await subtle.deriveBits({ name: "ECDH", public: a.publicKey }, b.privateKey, 384)),
          hmac: (await subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"])).algorithm.name,
        });
      }
      case "/form-echo": {
        // A client's multipart upload: the file's bytes and a text field, as they were sent.
        const form = await request.formData();
        const file = form.get("file");
        return Response.json({ name: file.name, bytes: [...new Uint8Array(await file.arrayBuffer())], field: form.get("field") });
      }
      case "/id":
        return Response.json({ id: this.ctx.id.toString(), name: this.ctx.id.name ?? null });
      case "/call": {
        // An object calling an object: the counter of the name given, through the binding.
        const stub = this.env.COUNTER.get(this.env.COUNTER.idFromName(url.searchParams.get("counter")));
        const res = await stub.fetch("http://do/increment", { method: "POST" });
        return Response.json({ status: res.status, counter: await res.json() });
      }
      case "/echo-json":
        // A body that is not JSON is the client's mistake: 400.
        return Response.json({ echo: await request.json() });
      case "/outbound": {
        // An outgoing request to ?url=; its answer, as it came.
        const res = await fetch(url.searchParams.get("url"));
        return new Response(await res.text(), { status: res.status, headers: { "content-type": "application/json" } });
      }
      case "/spin-for": {
        // Holds its instance for ?ms= of CPU (a loop that never awaits).
        const until = Date.now() + Number(url.searchParams.get("ms"));
        let turns = 0;
        while (Date.now() < until) turns++;
        return Response.json({ turns: turns > 0 });
      }
      case "/hog": {
        // Grows until the engine reports out of memory, and answers as code that catches it would.
        const kept = [];
        try {
          for (;;) kept.push(new Array(1 << 20).fill(kept.length));
        } catch (error) {
          return Response.json({ caught: String(error) }, { status: 507 });
        }
      }
      case "/stuck":
        // Waits for what only another event of this object could do (nothing ever calls it).
        await new Promise((resolve) => {
          this.release = resolve;
        });
        return Response.json({ released: true });
      case "/release":
        // Settles what `/stuck` waits for (an event beside the waiting one, through the inbox).
        if (this.release === undefined) return Response.json({ waiting: false }, { status: 409 });
        this.release();
        this.release = undefined;
        return Response.json({ waiting: true });
      case "/reenter": {
        // Calls ?via= by RPC, which calls this object back while it waits (as on Cloudflare).
        this.hits = (this.hits ?? 0) + 1;
        const via = this.env.PROBE.get(this.env.PROBE.idFromName(url.searchParams.get("via")));
        return Response.json({ before: this.hits, back: await via.callBack(this.ctx.id.name) });
      }
      case "/release-by-rpc": {
        // Calls `releaseWaiting()` on the Probe named ?to=.
        const stub = this.env.PROBE.get(this.env.PROBE.idFromName(url.searchParams.get("to")));
        return Response.json({ released: await stub.releaseWaiting() });
      }
      case "/await-alarm": {
        // Sets the alarm and waits for it: it fires beside this fetch and settles it.
        const fired = new Promise((resolve) => (this.alarmed = resolve));
        await this.ctx.storage.setAlarm(Date.now() + 50);
        const { retryCount } = await fired;
        return Response.json({ fired: true, retryCount, alarm: await this.ctx.storage.getAlarm() });
      }
      case "/await-message": {
        // Waits for the next message on the object's sockets ("release ..."), which runs beside.
        const said = await new Promise((resolve) => (this.heard = resolve));
        return Response.json({ said });
      }
      case "/stuck-in-transaction":
        // Waits inside a storage transaction for what only another event could do: none can
        // run beside it (it would write into the transaction), so it fails.
        await this.ctx.storage.transaction(() => new Promise(() => {}));
        return Response.json({ released: true });
      case "/memory":
        // State kept in memory only: each object counts its own requests.
        this.hits = (this.hits ?? 0) + 1;
        return Response.json({ hits: this.hits });
      case "/relay": {
        // A chain of calls within this class: each object counts the request in memory and calls
        // the next name of `to`; the answer lists every object's count, in order.
        this.hits = (this.hits ?? 0) + 1;
        const [next, ...rest] = (url.searchParams.get("to") ?? "").split(",").filter(Boolean);
        if (next === undefined) return Response.json({ hits: [this.hits] });
        const stub = this.env.PROBE.get(this.env.PROBE.idFromName(next));
        const res = await stub.fetch(`http://do/relay?to=${rest.join(",")}`);
        if (!res.ok) return new Response(await res.text(), { status: res.status });
        return Response.json({ hits: [this.hits, ...(await res.json()).hits] });
      }
      case "/rpc": {
        // RPC to the Probe named ?to=: every encodable type there and back, errors, storage.
        const other = this.env.PROBE.getByName(url.searchParams.get("to"));
        const values = sample();
        const [back] = await other.echo(values);
        const same = sameAs(back);
        const thrown = async (f) => {
          try {
            await f();
            return null;
          } catch (error) {
            if (!(error instanceof Error)) return { value: error };
            return { name: error.name, message: error.message, remote: error.remote ?? false };
          }
        };
        // Everything a thrown error carries across a stub: type, message, cause, own fields,
        // the flags a thrower may set, and which object threw (RPC only).
        const detailed = async (f) => {
          try {
            await f();
            return null;
          } catch (error) {
            return {
              type: error.constructor.name, name: error.name, message: error.message,
              remote: error.remote ?? null, code: error.code ?? null, retryable: error.retryable ?? null,
              cause: error.cause?.message ?? null, durableObjectId: error.durableObjectId ?? null,
            };
          }
        };
        return Response.json({
          same,
          sum: await other.add(2, 3),
          who: await other.whoAmI(),
          counts: [await other.count(), await other.count()],
          // Calls through one stub arrive in the order they were made (E-order).
          ordered: await Promise.all([other.count(), other.count()]),
          thrownRange: await thrown(() => other.fail("range")),
          thrownPlain: await thrown(() => other.fail("string")),
          missing: await thrown(() => other.nope()),
          handler: await thrown(() => other.alarm()),
          uncloneable: await thrown(() => other.echo(() => 1)),
          fetched: await (await other.fetch("http://do/id")).json(),
          thrownDetailed: await detailed(() => other.fail("detailed")),
          fetchThrew: await detailed(() => other.fetch("http://do/throw")),
          rust: url.searchParams.has("rust") ? await this.env.CALLS.getByName("r").add(40, 2) : null,
        });
      }
      case "/timer": {
        // A timer that outlives the event: it writes when it fires.
        const ms = Number(url.searchParams.get("ms"));
        setTimeout(async (at) => {
          await storage.put("fired", { at, late: Date.now() - at });
        }, ms, Date.now() + ms);
        return Response.json({ set: ms });
      }
      case "/fired":
        return Response.json({ fired: (await storage.get("fired")) ?? null, hits: (this.hits = (this.hits ?? 0) + 1) });
      case "/sleep": {
        // A handler that waits on a timer set after an await: driven inside the event.
        const started = Date.now();
        await storage.get("nothing");
        await new Promise((resolve) => setTimeout(resolve, Number(url.searchParams.get("ms"))));
        return Response.json({ slept: Date.now() - started });
      }
      case "/interval": {
        // setInterval after the event: it counts in storage n times, then clears itself.
        const n = Number(url.searchParams.get("n"));
        let ticks = 0;
        const handle = setInterval(async () => {
          ticks += 1;
          await storage.put("ticks", ticks);
          if (ticks === n) clearInterval(handle);
        }, Number(url.searchParams.get("ms")));
        const cancelled = setTimeout(() => storage.put("cancelled", true), 1);
        clearTimeout(cancelled);
        return Response.json({ interval: true });
      }
      case "/ticks":
        return Response.json({ ticks: (await storage.get("ticks")) ?? 0, cancelled: (await storage.get("cancelled")) ?? false });
      case "/wait-until": {
        // waitUntil: work on a timer, and on an outgoing request (?url=), after the response.
        this.ctx.waitUntil((async () => {
          await new Promise((resolve) => setTimeout(resolve, 50));
          await storage.put("waited", true);
        })());
        if (url.searchParams.has("url")) {
          this.ctx.waitUntil(fetch(url.searchParams.get("url")).then((res) => res.text()).then((text) => storage.put("fetched", text)));
        }
        return Response.json({ waiting: true });
      }
      case "/waited":
        return Response.json({ waited: (await storage.get("waited")) ?? false, fetched: (await storage.get("fetched")) ?? null });
      case "/block": {
        // blockConcurrencyWhile on a timer, not awaited: the object's next event waits for it.
        this.ctx.blockConcurrencyWhile(async () => {
          await new Promise((resolve) => setTimeout(resolve, Number(url.searchParams.get("ms"))));
          this.ready = true;
        });
        return Response.json({ ready: this.ready ?? false });
      }
      case "/ready":
        return Response.json({ ready: this.ready ?? false });
      case "/global-timer":
        return Response.json(await failure(async () => globalThis.setTimeout.call(null, "not a function", 1)));
      case "/ws-standard": {
        // The standard API: accept(), listeners; the object stays in memory while it is open.
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        server.addEventListener("message", async (event) => {
          this.heard = (this.heard ?? 0) + 1;
          if (event.data === "sleep") await new Promise((resolve) => setTimeout(resolve, 50));
          server.send(`echo ${event.data} (${this.heard} heard, open=${server.readyState === WebSocket.READY_STATE_OPEN})`);
        });
        server.onclose = (event) => storage.put("closed", { code: event.code, wasClean: event.wasClean });
        server.send("welcome");
        return new Response(null, { status: 101, webSocket: client });
      }
      case "/standard-closed":
        return Response.json({ closed: (await storage.get("closed")) ?? null });
      case "/compat": {
        // Cloudflare's API around requests and env, as libraries use it.
        const copy = request.clone();
        return Response.json({
          envKeys: Object.keys(this.env).sort(),
          spreadHasCounter: "COUNTER" in { ...this.env },
          cloneKeepsHeaders: copy.headers.get("x-custom"),
          ip: request.headers.get("cf-connecting-ip"),
          colo: request.cf.colo,
          country: request.cf.country ?? null,
          latitude: request.cf.latitude ?? null,
          readyStates: [WebSocket.READY_STATE_CONNECTING, WebSocket.READY_STATE_OPEN, WebSocket.READY_STATE_CLOSING, WebSocket.READY_STATE_CLOSED],
          // What libraries feature-test at load: workerd has no `location`.
          location: typeof globalThis.location,
          decoratedName: Decorated.name,
          idFromStringInvalid: thrownName(() => this.env.COUNTER.idFromString("invalid")),
          redirect200: thrownName(() => Response.redirect("https://example.com/", 200)),
          redirect301: Response.redirect("https://example.com", 301).headers.get("location"),
        });
      }
      case "/spin":
        for (;;);
      case "/sql":
        return Response.json(sqlApi(storage));
      case "/sql-count":
        return Response.json({ value: sqlCount(storage) });
      case "/sql-then-spin":
        // SQL and key-value writes, then a trap (the CPU limit): the event's writes all go.
        sqlCount(storage);
        await storage.put("beside", "written before the trap");
        for (;;);
      case "/sql-read":
        return Response.json(await sqlRead(storage));
      case "/sql-delete-all":
        await storage.deleteAll();
        return Response.json(await sqlRead(storage).catch((e) => String(e.message)));
      case "/env":
        // A var or secret of the deploy config, by name.
        return Response.json({ value: this.env[url.searchParams.get("name")] });
      case "/unknown-binding":
        // A name nothing binds is undefined, as on Cloudflare.
        return Response.json({ value: this.env.NOPE === undefined ? "undefined" : typeof this.env.NOPE, has: "NOPE" in this.env });
      case "/throw": {
        const error = new TypeError("thrown on purpose");
        error.code = "E_PROBE";
        throw error;
      }
      case "/ws": {
        const pair = new WebSocketPair();
        const [client, server] = Object.values(pair);
        // An attachment may be set before the socket is accepted (workerd allows it), and keeps
        // its types.
        server.serializeAttachment({ joined: url.searchParams.getAll("tag"), at: new Date(9) });
        this.ctx.acceptWebSocket(server, url.searchParams.getAll("tag"));
        return new Response(null, { status: 101, webSocket: client });
      }
      default:
        return new Response("Not found", { status: 404 });
    }
  }

  // RPC methods (the /rpc route calls them on another Probe; Rust classes call them too).
  /** Calls back the Probe named `name` (the caller waiting on this call): its memory count. */
  async callBack(name) {
    const caller = this.env.PROBE.get(this.env.PROBE.idFromName(name));
    return (await caller.fetch("http://do/memory")).json();
  }
  /** Settles what `/stuck` waits for, as an RPC call (it runs beside the waiting fetch). */
  releaseWaiting() {
    if (this.release === undefined) return false;
    this.release();
    this.release = undefined;
    return true;
  }
  echo(...args) {
    return args;
  }
  add(a, b) {
    return a + b;
  }
  async whoAmI() {
    return { id: this.ctx.id.toString(), name: this.ctx.id.name ?? null };
  }
  async count() {
    const n = ((await this.ctx.storage.get("rpc-count")) ?? 0) + 1;
    await this.ctx.storage.put("rpc-count", n);
    return n;
  }
  fail(kind) {
    if (kind === "range") throw new RangeError("too far");
    if (kind === "detailed") {
      const error = new SyntaxError("with details", { cause: new Error("the cause") });
      error.code = 42;
      error.retryable = true;
      throw error;
    }
    throw "a plain string";
  }

  async alarm(info) {
    this.alarmed?.(info);
    this.alarmed = undefined;
  }
  async webSocketMessage(ws, message) {
    const [command, arg] = String(message).split(" ");
    switch (command) {
      case "release":
        // Settles what `/await-message` waits for, and says so at once.
        this.heard?.(arg);
        this.heard = undefined;
        return ws.send(`released ${arg}`);
      case "tags":
        return ws.send(JSON.stringify(this.ctx.getTags(ws)));
      case "attachment":
        // A Date shown as what it is (a string would not be one).
        return ws.send(
          JSON.stringify(ws.deserializeAttachment(), function (key, v) {
            return this[key] instanceof Date ? `Date ${this[key].getTime()}` : v;
          }),
        );
      case "count":
        return ws.send(String(this.ctx.getWebSockets(arg).length));
      case "auto":
        this.ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
        return ws.send("auto set");
      case "bytes":
        return ws.send(new Uint8Array([1, 2, 3]));
      default:
        return ws.send(`unknown ${command}`);
    }
  }
}
