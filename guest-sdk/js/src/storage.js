// `ctx.storage`: Cloudflare's Durable Object storage API over the `duro:object/storage` import.
// Values are kept as their structured clone (`clone.js`: a Date stays a Date, bytes stay bytes,
// a JSON-shaped value is stored as its JSON, which the Rust, Python and C SDKs read). Every
// method returns a Promise, as on Cloudflare; the work itself is done at the call.

import * as raw from "duro:object/storage@0.1.0";
import { deserialize as decode, serialize } from "./clone.js";
import { enabled } from "./compat.js";
import { lift } from "./errors.js";
import { SqlStorage } from "./sql.js";

function encode(value) {
  if (value === undefined) throw new TypeError("put() called with undefined value.");
  return serialize(value);
}

/** An optional string option, coerced as workerd does. */
function text(value) {
  return value === undefined || value === null ? undefined : String(value);
}

/** `list`'s options, checked as Cloudflare checks them. */
function listOptions({ prefix, start, startAfter, end, reverse, limit } = {}) {
  if (start !== undefined && startAfter !== undefined) {
    throw new TypeError("list() cannot be called with both start and startAfter values.");
  }
  if (limit !== undefined) {
    limit = Math.trunc(Number(limit));
    if (!(limit > 0)) throw new TypeError("List limit must be positive.");
  }
  return {
    prefix: text(prefix),
    start: text(start),
    startAfter: text(startAfter),
    end: text(end),
    reverse: Boolean(reverse),
    limit: limit === undefined ? undefined : Math.min(limit, 0xffffffff),
  };
}

function entriesMap(entries) {
  const map = new Map();
  for (const [key, bytes] of entries) map.set(key, decode(bytes));
  return map;
}

function call(f) {
  return lift("storage", f);
}

// One key's operations and `list`, shared by the async API and the synchronous `kv`.
function getOne(key) {
  const bytes = call(() => raw.get(String(key)));
  return bytes === undefined ? undefined : decode(bytes);
}

function putOne(key, value, bytes = encode(value)) {
  call(() => raw.put(String(key), bytes));
}

function deleteOne(key) {
  return call(() => raw.delete(String(key)));
}

/** `[key, bytes]` pairs in key order (`prefix`, `start`, `startAfter`, `end`, `reverse`, `limit`). */
function listEntries(options) {
  const checked = listOptions(options);
  return call(() => raw.list(checked));
}

/** The operations a transaction's `txn` shares with `storage`. */
class Operations {
  /** `get(key)`: the value or undefined; `get([keys])`: a Map of the keys that exist. */
  async get(keys) {
    if (Array.isArray(keys)) return entriesMap(call(() => raw.getMany(keys.map(String))));
    return getOne(keys);
  }

  /** `put(key, value)`, or `put({ key: value, ... })` (all or none). */
  async put(keyOrEntries, value) {
    if (typeof keyOrEntries === "object" && keyOrEntries !== null) {
      // Every value is cloned before anything is written; undefined ones are skipped, as on
      // Cloudflare.
      const entries = Object.entries(keyOrEntries)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, serialize(v)]);
      call(() => raw.putMany(entries));
    } else {
      putOne(keyOrEntries, value);
    }
  }

  /** `delete(key)`: whether it existed; `delete([keys])`: how many existed. */
  async delete(keys) {
    if (Array.isArray(keys)) return call(() => raw.deleteMany(keys.map(String)));
    return deleteOne(keys);
  }

  /** `list({ prefix, start, startAfter, end, reverse, limit })`: a Map in key order. */
  async list(options = {}) {
    return entriesMap(listEntries(options));
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

/** `transaction` closures running, in any object of the instance, and who waits for none. */
let open = 0;
const closed = [];

/** Whether a `transaction` closure runs (its writes are in an open transaction). */
export function inTransaction() {
  return open > 0;
}

/** Resolves once no `transaction` closure runs: an event from the inbox must not write into
 * another event's transaction. */
export function outsideTransactions() {
  return open === 0 ? Promise.resolve() : new Promise((resume) => closed.push(resume));
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
    open++;
    let result;
    try {
      result = await closure(txn);
    } catch (error) {
      call(() => raw.transactionRollback());
      throw error;
    } finally {
      if (--open === 0) for (const resume of closed.splice(0)) resume();
    }
    call(() => (txn.rolledBack ? raw.transactionRollback() : raw.transactionCommit()));
    return result;
  }

  /** Deletes every key of this object, and its alarm from compatibility date 2026-02-24
   * (`delete_all_deletes_alarm`), as Cloudflare does. */
  async deleteAll() {
    call(() => raw.deleteAll());
    if (enabled("delete_all_deletes_alarm", "2026-02-24", "delete_all_preserves_alarm")) {
      call(() => raw.deleteAlarm());
    }
  }

  /** Nothing to wait for: writes become durable before the event's output leaves. */
  async sync() {}

  /** The object's SQL database (`exec`, `databaseSize`). */
  get sql() {
    return (this._sql ??= new SqlStorage());
  }

  /** Runs `fn` synchronously; its writes (SQL and key-value) are kept if it returns, undone if
   * it throws. */
  transactionSync(fn) {
    call(() => raw.transactionBegin());
    let result;
    try {
      result = fn();
    } catch (error) {
      call(() => raw.transactionRollback());
      throw error;
    }
    call(() => raw.transactionCommit());
    return result;
  }

  /** The synchronous key-value API of SQLite-backed objects, over the same keys. */
  get kv() {
    return (this._kv ??= new SyncKvStorage());
  }
}

/** `ctx.storage.kv`: `get`, `put`, `delete`, `list`, answered at once. */
class SyncKvStorage {
  get(key) {
    return getOne(key);
  }

  /** Unlike `storage.put`, `undefined` is a value here (workerd's). */
  put(key, value) {
    putOne(key, value, serialize(value));
  }

  delete(key) {
    return deleteOne(key);
  }

  /** An iterator of `[key, value]` in key order. */
  list(options = {}) {
    return listEntries(options)
      .map(([key, bytes]) => [key, decode(bytes)])
      [Symbol.iterator]();
  }
}
