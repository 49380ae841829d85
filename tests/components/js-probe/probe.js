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
        out.alarmBefore = await storage.getAlarm();
        await storage.setAlarm(new Date(Date.now() + 3_600_000));
        out.alarmSet = (await storage.getAlarm()) - Date.now();
        await storage.deleteAlarm();
        out.alarmAfter = await storage.getAlarm();
        await storage.deleteAll();
        out.afterDeleteAll = (await storage.list()).size;
        return Response.json(out);
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
        const values = {
          text: "é\u0000", int: 7, float: 1.5, negZero: -0, nan: NaN, inf: -Infinity, nil: null,
          undef: undefined, yes: true, big: 12345678901234567890n, date: new Date(1700000000000),
          map: new Map([[1, "one"], ["k", { nested: [1, 2] }]]), set: new Set(["a", 3]),
          bytes: new Uint8Array([0, 1, 255]), buffer: new Uint16Array([513, 65535]).buffer,
          floats: new Float64Array([0.5, -2]), regexp: /a+b/gi, error: new RangeError("out of range"),
          tricky: { $type: "Date", value: "not a date" }, list: [1, [2, [3]]],
        };
        const [back] = await other.echo(values);
        const same = {
          text: back.text === values.text, int: back.int === 7, float: back.float === 1.5,
          negZero: Object.is(back.negZero, -0), nan: Number.isNaN(back.nan), inf: back.inf === -Infinity,
          nil: back.nil === null, undef: "undef" in back && back.undef === undefined, yes: back.yes === true,
          big: back.big === values.big, date: back.date instanceof Date && back.date.getTime() === 1700000000000,
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
        const thrown = async (f) => {
          try {
            await f();
            return null;
          } catch (error) {
            if (!(error instanceof Error)) return { value: error };
            return { name: error.name, message: error.message, remote: error.remote ?? false };
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
        return Response.json(await failure(() => this.env.NOPE.idFromName("x")));
      case "/throw":
        throw new TypeError("thrown on purpose");
      case "/ws": {
        const pair = new WebSocketPair();
        const [client, server] = Object.values(pair);
        this.ctx.acceptWebSocket(server, url.searchParams.getAll("tag"));
        server.serializeAttachment({ joined: url.searchParams.getAll("tag") });
        return new Response(null, { status: 101, webSocket: client });
      }
      default:
        return new Response("Not found", { status: 404 });
    }
  }

  // RPC methods (the /rpc route calls them on another Probe; Rust classes call them too).
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
    throw "a plain string";
  }

  async webSocketMessage(ws, message) {
    const [command, arg] = String(message).split(" ");
    switch (command) {
      case "tags":
        return ws.send(JSON.stringify(this.ctx.getTags(ws)));
      case "attachment":
        return ws.send(JSON.stringify(ws.deserializeAttachment()));
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
