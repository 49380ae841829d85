// `ctx.storage.sql` and `ctx.storage.kv`: Cloudflare's SQLite-backed storage API over the
// `duro:object/sql` import. The host runs the SQL (one SQLite database per object, committed with
// the event's other writes); a cursor here holds the rows it returned. As on Cloudflare, numbers
// come back as numbers (64-bit integers included), blobs as ArrayBuffers.

import * as raw from "duro:object/sql@0.1.0";

/** Runs a `result<_, string>` import, rethrowing its error text as an Error. */
function call(f) {
  try {
    return f();
  } catch (e) {
    if (e && typeof e === "object" && typeof e.payload === "string") throw new Error(e.payload);
    throw e;
  }
}

function bind(value) {
  if (value === null || value === undefined) return { tag: "null" };
  switch (typeof value) {
    case "number":
      return Number.isSafeInteger(value) ? { tag: "integer", val: BigInt(value) } : { tag: "real", val: value };
    case "bigint":
      return { tag: "integer", val: BigInt.asIntN(64, value) };
    case "boolean":
      return { tag: "integer", val: value ? 1n : 0n };
    case "string":
      return { tag: "text", val: value };
  }
  if (value instanceof ArrayBuffer) return { tag: "blob", val: new Uint8Array(value) };
  if (ArrayBuffer.isView(value)) {
    return { tag: "blob", val: new Uint8Array(value.buffer, value.byteOffset, value.byteLength) };
  }
  throw new TypeError(`sql.exec: cannot bind a value of type ${typeof value} (use null, a number, a bigint, a string or an ArrayBuffer)`);
}

function lift({ tag, val }) {
  switch (tag) {
    case "null":
      return null;
    case "integer":
      return Number(val);
    case "real":
      return val;
    case "text":
      return val;
    case "blob":
      return val.buffer.slice(val.byteOffset, val.byteOffset + val.byteLength);
  }
  return null;
}

/** What `exec` returns: iterate it, or take `toArray()`, `one()`, `raw()`. */
export class SqlStorageCursor {
  #columns;
  #rows;
  #next = 0;

  constructor(cursor) {
    this.#columns = cursor.columns;
    this.#rows = cursor.rows;
    this.rowsRead = Number(cursor.rowsRead);
    this.rowsWritten = Number(cursor.rowsWritten);
  }

  get columnNames() {
    return [...this.#columns];
  }

  #take() {
    return this.#next < this.#rows.length ? this.#rows[this.#next++].map(lift) : undefined;
  }

  #object(values) {
    const row = {};
    this.#columns.forEach((name, i) => {
      row[name] = values[i];
    });
    return row;
  }

  /** The next row as an object `{ column: value }`. */
  next() {
    const values = this.#take();
    return values === undefined ? { done: true, value: undefined } : { done: false, value: this.#object(values) };
  }

  [Symbol.iterator]() {
    return this;
  }

  /** The rows left, as objects. */
  toArray() {
    const rows = [];
    for (let values = this.#take(); values !== undefined; values = this.#take()) rows.push(this.#object(values));
    return rows;
  }

  /** The one row left; an error unless there is exactly one. */
  one() {
    const rows = this.toArray();
    if (rows.length === 0) throw new Error("Expected exactly one result from SQL query, but got no results.");
    if (rows.length > 1) throw new Error("Expected exactly one result from SQL query, but got multiple results.");
    return rows[0];
  }

  /** The rows left as arrays of values, sharing this cursor's position. */
  raw() {
    const take = () => this.#take();
    return {
      next() {
        const values = take();
        return values === undefined ? { done: true, value: undefined } : { done: false, value: values };
      },
      toArray() {
        const rows = [];
        for (let values = take(); values !== undefined; values = take()) rows.push(values);
        return rows;
      },
      [Symbol.iterator]() {
        return this;
      },
    };
  }
}

/** `ctx.storage.sql`. */
export class SqlStorage {
  /** Runs `query` (one or more statements; `bindings` go to the last) and returns its cursor. */
  exec(query, ...bindings) {
    const values = bindings.map(bind);
    return new SqlStorageCursor(call(() => raw.exec(String(query), values)));
  }

  /** Bytes the database takes. */
  get databaseSize() {
    return Number(call(() => raw.databaseSize()));
  }
}
