// Work an object keeps after its event: `setTimeout` / `setInterval`, `ctx.waitUntil(promise)`
// and `blockConcurrencyWhile`, per object.
//
// The platform's own timers fire only while some export happens to poll, maybe during another
// object's event; so in an object the SDK keeps its own timers, one set per object:
// - inside an event, an export that waits on a timer (`await new Promise(r => setTimeout(r,
//   100))`) is driven to its end: the SDK sleeps on a platform timer until the object's next timer
//   is due, runs it, and so on until the handler settles;
// - timers still pending when the event ends are reported to the runtime (`timers.wake-after`),
//   which runs the `wake` export as a later event of the object, when the first is due: its
//   callbacks run there, their writes committed and gated like any event's;
// - a `waitUntil` promise that waits on platform work (an outgoing `fetch`) gets wakes that
//   "pump" the platform's event loop, more rarely the longer it waits, until it settles.
// The runtime keeps the object in memory while it has such work, up to its background limit.

import * as host from "duro:object/timers@0.1.0";
import { logged } from "./errors.js";
import { busy, raw } from "./inflight.js";
import { listen } from "./inbox.js";
import { inTransaction } from "./storage.js";

/** Most timers one object may have pending. */
const MAX_TIMERS = 10_000;
/** Longest a `blockConcurrencyWhile` callback may hold the object (Cloudflare's 30 s). */
const BLOCK_LIMIT_MS = 30_000;
/** How long a handler may wait with nothing in flight that could settle it before it fails
 * (the engine would otherwise abort the instance), and the checks' first and longest gaps. */
const STUCK_MS = 100;
/** The same while other events of the object may run beside it and settle it (the inbox). */
const STUCK_BESIDE_MS = 30_000;
/** Microtask turns a handler may take before it is watched (a platform timer per watch). */
const STUCK_HOPS = 64;
const CHECK_FIRST_MS = 10;
const CHECK_LONGEST_MS = 250;
/** Pumps for pending `waitUntil` work start this often and back off to the longest. */
const PUMP_FIRST_MS = 1;
const PUMP_LONGEST_MS = 250;

const native = raw;

/** The timers and background work of one object. */
export class Background {
  /** handle -> { at, fn, args, every } */
  timers = new Map();
  /** `waitUntil` promises not yet settled. */
  pending = new Set();
  /** The deadline last told to the runtime (ms since the epoch), or null. */
  reported = null;
  /** The next turn for pending `waitUntil` work (ms since the epoch), and the gap after it. */
  pumpAt = 0;
  pump = PUMP_FIRST_MS;
  reportQueued = false;
  /** A `blockConcurrencyWhile` callback's promise, until it settles. */
  blocked = null;
  /** Wakes a `drive` waiting with no timer pending, when one is set. */
  #onAdd = null;

  /** The earliest time this object needs to run, or undefined. */
  due() {
    let at;
    for (const timer of this.timers.values()) if (at === undefined || timer.at < at) at = timer.at;
    if (this.pending.size > 0 && (at === undefined || this.pumpAt < at)) at = this.pumpAt;
    return at;
  }

  /** Tells the runtime when to wake this object, if that changed. Runs in its event only. */
  report() {
    this.reportQueued = false;
    const at = this.due() ?? null;
    if (at === this.reported) return;
    this.reported = at;
    host.wakeAfter(at === null ? undefined : BigInt(Math.max(0, Math.ceil(at - Date.now()))));
  }

  /** Reports once the event's microtasks ran (timers set by floating promises count too). */
  changed() {
    if (this.reportQueued) return;
    this.reportQueued = true;
    queueMicrotask(() => this.report());
  }

  add(fn, delay, args, every) {
    if (typeof fn !== "function") throw new TypeError("setTimeout/setInterval: the callback must be a function");
    if (this.timers.size >= MAX_TIMERS) {
      throw new RangeError(`too many pending timers in this Durable Object (limit ${MAX_TIMERS})`);
    }
    const ms = Math.max(every ? 1 : 0, Number(delay) || 0);
    const handle = nextHandle++;
    this.timers.set(handle, { at: Date.now() + ms, fn, args, every: every ? ms : 0 });
    owners.set(handle, this);
    this.changed();
    this.#onAdd?.();
    this.#onAdd = null;
    return handle;
  }

  clear(handle) {
    if (this.timers.delete(handle)) this.changed();
    owners.delete(handle);
  }

  /** The object left the instance: its timers go. */
  forget() {
    for (const handle of this.timers.keys()) owners.delete(handle);
    this.timers.clear();
    this.pending.clear();
  }

  /** Runs the timers that are due, earliest first; an interval is set again from now. */
  runDue() {
    const now = Date.now();
    const due = [...this.timers].filter(([, t]) => t.at <= now).sort((a, b) => a[1].at - b[1].at || a[0] - b[0]);
    for (const [handle, timer] of due) {
      if (!this.timers.has(handle)) continue; // cleared by an earlier callback
      if (timer.every) timer.at = Date.now() + timer.every;
      else this.clear(handle);
      try {
        timer.fn(...timer.args);
      } catch (error) {
        console.error(`timer callback failed: ${logged(error)}`);
      }
    }
    this.changed();
  }

  /**
   * Runs an event's handler: a pending `blockConcurrencyWhile` first, then `handler()`, driven
   * until it settles. Settles as the handler does.
   */
  run(handler) {
    if (this.blocked !== null) return this.settleBlock().then(() => this.drive(handler()));
    return this.drive(handler());
  }

  /**
   * Waits for `promise` inside the running event, running this object's timers as they fall
   * due (platform work, such as a `fetch`, moves on by itself meanwhile). Settles as it does.
   * The common case costs one `then`: while no timer is pending the promise is only watched,
   * and the timer loop starts when one is set.
   */
  drive(promise) {
    if (typeof promise?.then !== "function") return promise;
    if (this.timers.size > 0) return this.#drive(promise);
    return new Promise((resolve, reject) => {
      let watching = true;
      let stop = () => {
        watching = false;
        this.#onAdd = null;
      };
      promise.then(
        (value) => watching && (stop(), resolve(value)),
        (error) => watching && (stop(), reject(error)),
      );
      this.#onAdd = () => {
        if (watching) stop(), resolve(this.#drive(promise));
      };
      // A handler still waiting once its microtasks ran out waits beside other events: hops
      // through the microtask queue (one per turn of the handler's own chain, so a handler that
      // settles in its microtasks costs a few hops, no platform timer and no inbox), then
      // `#beside`.
      const hop = (left) => {
        if (!watching) return;
        if (left > 0) queueMicrotask(() => hop(left - 1));
        else {
          const quit = this.#beside(() => watching, (error) => (stop(), reject(error)));
          const stopWatching = stop;
          stop = () => (quit(), stopWatching());
        }
      };
      hop(STUCK_HOPS);
    });
  }

  /**
   * While `waiting()`, the object's other events run beside the waiting handler (the inbox),
   * unless a `blockConcurrencyWhile` or a storage transaction holds the object; and a handler
   * that nothing could settle fails (`#watchStuck`). Returns what ends the listening.
   */
  #beside(waiting, fail) {
    if (this.blocked !== null || inTransaction()) {
      this.#watchStuck(waiting, fail, STUCK_MS);
      return () => {};
    }
    const quit = listen();
    this.#watchStuck(waiting, (error) => (quit(), fail(error)), STUCK_BESIDE_MS);
    return quit;
  }

  /**
   * While `waiting()`, checks (more rarely as time goes) whether anything could still settle the
   * handler: a timer of this object (`#onAdd` takes over then), or platform work in flight
   * (`inflight.js`). Nothing for `bound` ms: the handler awaits what only another event of this
   * object could settle — and none came, or none can run beside it now — so it fails with
   * `fail(error)` instead of leaving the engine with nothing to run (which aborts the instance).
   */
  #watchStuck(waiting, fail, bound) {
    let gap = CHECK_FIRST_MS;
    let idleSince = Date.now();
    const check = () => {
      if (!waiting() || this.timers.size > 0) return;
      if (busy()) idleSince = Date.now();
      else if (Date.now() - idleSince >= bound) return fail(stuckError(bound));
      gap = Math.min(gap * 2, CHECK_LONGEST_MS);
      native.setTimeout(check, gap);
    };
    native.setTimeout(check, gap);
  }

  /** `drive`'s timer loop, up to `limitMs` if given (then undefined). */
  async #drive(promise, limitMs) {
    let settled = false;
    const done = Promise.resolve(promise).then(
      () => (settled = true),
      () => (settled = true),
    );
    const limit = limitMs === undefined ? undefined : Date.now() + limitMs;
    for (;;) {
      if (settled) return promise;
      let at = undefined;
      for (const timer of this.timers.values()) if (at === undefined || timer.at < at) at = timer.at;
      if (limit !== undefined && (at === undefined || limit < at)) at = limit;
      if (at === undefined) {
        // Only the platform's work or another event can settle it now, unless a timer is set.
        let waiting = true;
        let quit = () => {};
        await Promise.race([
          done,
          new Promise((resolve, reject) => {
            this.#onAdd = resolve;
            quit = this.#beside(() => waiting, reject);
          }),
        ]).finally(() => ((waiting = false), quit()));
        this.#onAdd = null;
        continue;
      }
      let handle;
      const sleep = new Promise((resolve) => (handle = native.setTimeout(resolve, Math.max(0, at - Date.now()))));
      await Promise.race([done, sleep]);
      native.clearTimeout(handle);
      if (settled) return promise;
      if (limit !== undefined && Date.now() >= limit) return undefined;
      this.runDue();
    }
  }

  /** A `wake`: the due timers run, and pending `waitUntil` work gets a turn of the event loop. */
  async wake() {
    this.reported = null; // the runtime forgot it when it woke us
    this.runDue();
    if (this.pending.size > 0 && this.pumpAt <= Date.now()) {
      await new Promise((resolve) => native.setTimeout(resolve, 0));
      this.pump = Math.min(this.pump * 2, PUMP_LONGEST_MS);
      this.pumpAt = Date.now() + this.pump;
    }
    this.changed();
  }

  /** `ctx.waitUntil(promise)`: kept running after the event, its failure logged. */
  waitUntil(promise) {
    this.keep(Promise.resolve(promise).catch((error) => console.error(`waitUntil: ${logged(error)}`)));
  }

  /** Work that may outlive the event, pumped until it settles (its outcome is its own). */
  keep(promise) {
    const tracked = Promise.resolve(promise).then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(tracked);
    this.pump = PUMP_FIRST_MS;
    this.pumpAt = Date.now() + this.pump;
    tracked.then(() => {
      this.pending.delete(tracked);
      this.changed();
    });
    this.changed();
  }

  /** `ctx.blockConcurrencyWhile(f)`: no other event of the object runs until `f` settles. */
  blockConcurrencyWhile(f) {
    const run = (async () => f())();
    const block = run.then(
      () => undefined,
      () => undefined,
    );
    this.blocked = block;
    block.then(() => {
      if (this.blocked === block) this.blocked = null;
    });
    return run;
  }

  /** Before an event's handler: a pending `blockConcurrencyWhile` finishes first. */
  async settleBlock() {
    while (this.blocked !== null) {
      const block = this.blocked;
      const finished = await this.#drive(block.then(() => true), BLOCK_LIMIT_MS);
      if (finished === undefined) {
        this.blocked = null;
        throw new Error(
          "A call to blockConcurrencyWhile() in a Durable Object waited for too long. The call was canceled and the Durable Object was reset.",
        );
      }
    }
  }
}

let nextHandle = 1;
/** Which object a timer handle belongs to. */
const owners = new Map();
/** The running event's object, its `Background`; null before the first event (build time). */
let current = null;

/** Makes `background` the running event's object: timers set from now on are its. */
export function enter(background) {
  current = background;
}

function running(what) {
  if (current === null) {
    throw new Error(`${what}() cannot be called in the global scope: only inside a handler (an event of the object)`);
  }
  return current;
}

/** The error of a handler that waited `bound` ms for what only another event of its object
 * could do. */
function stuckError(bound) {
  const why =
    bound === STUCK_MS
      ? "only another event of this Durable Object could, and none can run while a " +
        "blockConcurrencyWhile() callback or a storage transaction waits"
      : `only another event of this Durable Object could, and none did for ${bound / 1000} s`;
  return new Error(
    "The handler awaits a promise that nothing in its event can settle (no timer, fetch or other " +
      `I/O is pending): ${why}`,
  );
}

/** Installs the per-object timers as the globals (objects only; a worker keeps the platform's). */
export function install() {
  globalThis.setTimeout = (fn, delay, ...args) => running("setTimeout").add(fn, delay, args, false);
  globalThis.setInterval = (fn, delay, ...args) => running("setInterval").add(fn, delay, args, true);
  const clear = (handle) => owners.get(handle)?.clear(handle);
  globalThis.clearTimeout = clear;
  globalThis.clearInterval = clear;
}

/**
 * Platform work an object's event started that may outlive it (a call to another object that
 * the handler does not await): the object gets wakes that run the platform's event loop until it
 * settles, as for `waitUntil`. Nothing outside an object.
 */
export function keepUntilSettled(promise) {
  current?.keep(promise);
}

/** Where `waitUntil` outside an object's event goes: set by a worker (`ctx.waitUntil`). */
let outside = (promise) => Promise.resolve(promise).catch((error) => console.error(`waitUntil: ${error}`));

/** Makes `keep` what `waitUntil` does outside an object (a worker's request). */
export function waitUntilOutside(keep) {
  outside = keep;
}

/**
 * `waitUntil(promise)` of `cloudflare:workers`: in an object, the running event's object's
 * `ctx.waitUntil`; in a worker, the request's `ctx.waitUntil`.
 */
export function waitUntil(promise) {
  if (current !== null) current.waitUntil(promise);
  else outside(promise);
}
