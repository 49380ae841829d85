// `ctx.storage`: Cloudflare's Durable Object storage API over the `duro:object/storage` import.
// Values are JSON (what the Rust SDK stores too, so classes in either language read each other's
// data). Every method returns a Promise, as on Cloudflare; the work itself is done at the call.

import * as raw from "duro:object/storage@0.1.0";
import { lift } from "./errors.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encode(key, value) {
  if (value === undefined) throw new TypeError(`storage.put: the value of "${key}" is undefined`);
  return encoder.encode(JSON.stringify(value));
}

function decode(bytes) {
  return JSON.parse(decoder.decode(bytes));
}

function entriesMap(entries) {
  const map = new Map();
  for (const [key, bytes] of entries) map.set(key, decode(bytes));
  return map;
}

function call(f) {
  return lift("storage", f);
}

/** The operations a transaction's `txn` shares with `storage`. */
class Operations {
  /** `get(key)`: the value or undefined; `get([keys])`: a Map of the keys that exist. */
  async get(keys) {
    if (Array.isArray(keys)) return entriesMap(call(() => raw.getMany(keys)));
    const bytes = call(() => raw.get(String(keys)));
    return bytes === undefined ? undefined : decode(bytes);
  }

  /** `put(key, value)`, or `put({ key: value, ... })` (all or none). */
  async put(keyOrEntries, value) {
    if (typeof keyOrEntries === "object" && keyOrEntries !== null) {
      const entries = Object.entries(keyOrEntries).map(([k, v]) => [k, encode(k, v)]);
      call(() => raw.putMany(entries));
    } else {
      const key = String(keyOrEntries);
      const bytes = encode(key, value);
      call(() => raw.put(key, bytes));
    }
  }

  /** `delete(key)`: whether it existed; `delete([keys])`: how many existed. */
  async delete(keys) {
    if (Array.isArray(keys)) return call(() => raw.deleteMany(keys));
    return call(() => raw.delete(String(keys)));
  }

  /** `list({ prefix, start, startAfter, end, reverse, limit })`: a Map in key order. */
  async list(options = {}) {
    const { prefix, start, startAfter, end, reverse, limit } = options;
    return entriesMap(
      call(() =>
        raw.list({
          prefix: prefix ?? undefined,
          start: start ?? undefined,
          startAfter: startAfter ?? undefined,
          end: end ?? undefined,
          reverse: Boolean(reverse),
          limit: limit ?? undefined,
        }),
      ),
    );
  }

  /** The alarm's time (ms since the epoch), or null. */
  async getAlarm() {
    const at = call(() => raw.getAlarm());
    return at === undefined ? null : Number(at);
  }

  /** Sets the object's one alarm (ms since the epoch, or a Date); replaces any other. */
  async setAlarm(scheduledTime) {
    const at = scheduledTime instanceof Date ? scheduledTime.getTime() : Number(scheduledTime);
    if (!Number.isFinite(at)) throw new TypeError("storage.setAlarm: expected a time in ms or a Date");
    call(() => raw.setAlarm(BigInt(Math.trunc(at))));
  }

  async deleteAlarm() {
    call(() => raw.deleteAlarm());
  }
}

/** A transaction's `txn`: the storage operations, plus `rollback()`. */
class Transaction extends Operations {
  rolledBack = false;
  /** Discards the transaction's writes when its closure ends. */
  rollback() {
    this.rolledBack = true;
  }
}

/** `this.ctx.storage`. */
export class Storage extends Operations {
  /**
   * Runs `closure(txn)`: its writes are kept if it returns, dropped if it throws (the error is
   * rethrown) or calls `txn.rollback()`. Returns what the closure returns.
   */
  async transaction(closure) {
    call(() => raw.transactionBegin());
    const txn = new Transaction();
    let result;
    try {
      result = await closure(txn);
    } catch (error) {
      call(() => raw.transactionRollback());
      throw error;
    }
    call(() => (txn.rolledBack ? raw.transactionRollback() : raw.transactionCommit()));
    return result;
  }

  /** Deletes every key of this object. */
  async deleteAll() {
    call(() => raw.deleteAll());
  }

  /** Nothing to wait for: writes become durable before the event's output leaves. */
  async sync() {}
}
