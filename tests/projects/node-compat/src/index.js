import { DurableObject, WorkflowEntrypoint } from "cloudflare:workers";
import { EmailMessage } from "cloudflare:email";
import { Buffer as ImportedBuffer } from "node:buffer";
import { EventEmitter, once } from "node:events";
import path from "node:path";
import { format, types } from "node:util";
import assert from "node:assert";
import { StringDecoder } from "node:string_decoder";
import { AsyncLocalStorage } from "node:async_hooks";
import process from "node:process";
import events from "events";
import { PassThrough, Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createHash, createHmac, hkdfSync, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

/** What each module does, as Node's would; the same in the worker and in the object. */
async function checks() {
  const out = {};
  out.buffer = [
    Buffer.from("héllo").toString("base64"),
    Buffer === ImportedBuffer,
    Buffer.concat([Buffer.from([1]), Buffer.from([2])]).length,
    Buffer.from("ff00", "hex").readUInt16BE(0),
  ];
  const emitter = new EventEmitter();
  let got = null;
  emitter.on("x", (value) => (got = value));
  emitter.emit("x", 5);
  queueMicrotask(() => emitter.emit("later", "then"));
  const [later] = await once(emitter, "later");
  // Pre-class code calls the constructor as a function.
  function Legacy() {
    EventEmitter.call(this);
  }
  Object.setPrototypeOf(Legacy.prototype, EventEmitter.prototype);
  const legacy = new Legacy();
  legacy.on("y", (value) => (got += value));
  legacy.emit("y", 1);
  out.events = [got, later, events.EventEmitter === EventEmitter, legacy instanceof EventEmitter];
  out.path = [path.join("/a/b", "../c", "d.txt"), path.extname("x.tar.gz"), path.basename("/q/r.js", ".js")];
  out.util = [format("%s=%d", "n", 42), types.isDate(new Date())];
  try {
    assert.strictEqual(1, 2);
    out.assert = "did not throw";
  } catch (error) {
    out.assert = error.name;
  }
  out.crypto = [
    createHash("sha256").update("abc").digest("hex"),
    createHash("md5").update(Buffer.from("abc")).digest("base64"),
    createHmac("sha1", "key").update("The quick brown fox jumps over the lazy dog").digest("hex"),
    pbkdf2Sync("password", "salt", 1, 20, "sha1").toString("hex"),
    randomBytes(16).length,
    timingSafeEqual(Buffer.from("a"), Buffer.from("a")),
    Buffer.from(hkdfSync("sha256", "key", "salt", "info", 16)).toString("hex"),
  ];
  const upper = new Transform({
    transform(chunk, _encoding, done) {
      done(null, chunk.toString().toUpperCase());
    },
  });
  const collected = [];
  const sink = new PassThrough();
  sink.on("data", (chunk) => collected.push(chunk.toString()));
  await pipeline(Readable.from(["ab", "cd"]), upper, sink);
  out.stream = collected.join("");
  out.decoder = new StringDecoder("utf8").write(Buffer.from([0xc3, 0xa9]));
  out.env = [process.env.GREETING, typeof process.env.NOPE, "GREETING" in process.env];
  out.globals = [typeof global, globalThis.Buffer === Buffer, typeof process.nextTick];
  // The store follows each run's own work across awaits, with two runs interleaved.
  const als = new AsyncLocalStorage();
  const seen = async (who) =>
    als.run({ who }, async () => {
      const before = als.getStore().who;
      await new Promise((resolve) => setTimeout(resolve, 5));
      await null;
      const after = await Promise.resolve().then(() => als.getStore().who);
      return `${before}/${after}/${als.getStore()?.who}`;
    });
  out.als = [...(await Promise.all([seen("a"), seen("b")])), als.getStore() ?? "outside"];
  return out;
}

export class Notes extends DurableObject {
  async checks() {
    return checks();
  }

  /** What is left of the alarm after `deleteAll()` (null from compatibility date 2026-02-24). */
  async alarmAfterDeleteAll() {
    await this.ctx.storage.put("k", 1);
    await this.ctx.storage.setAlarm(Date.now() + 3_600_000);
    await this.ctx.storage.deleteAll();
    return { alarm: await this.ctx.storage.getAlarm(), keys: (await this.ctx.storage.list()).size };
  }
}

// A Workflow and an email message: defining them must not break the build or the worker.
export class Digest extends WorkflowEntrypoint {
  async run(event, step) {
    return step.do("noop", async () => event.payload);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/worker") {
      const message = new EmailMessage("a@example.com", "b@example.com", "Subject: hi\r\n\r\nhi");
      return Response.json({ ...(await checks()), email: message.to });
    }
    if (url.pathname === "/object") return Response.json(await env.NOTES.getByName("n").checks());
    if (url.pathname === "/delete-all") return Response.json(await env.NOTES.getByName("n").alarmAfterDeleteAll());
    return new Response("not found", { status: 404 });
  },
};
