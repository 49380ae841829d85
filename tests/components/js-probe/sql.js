// The JS probe's SQL routes (tests/languages.rs): Cloudflare's `ctx.storage.sql` API, each
// result as JSON.

/** What a failing call threw: its message (SQL errors are plain Errors, as on Cloudflare). */
function thrown(f) {
  try {
    f();
    return null;
  } catch (error) {
    return String(error.message);
  }
}

/** `/sql`: the API's answers, from a fresh database. */
export function sqlApi(storage) {
  const sql = storage.sql;
  const out = {};
  out.sizeEmpty = sql.databaseSize;
  sql.exec("CREATE TABLE kinds (i INTEGER, r REAL, t TEXT, b BLOB, n)");
  const insert = sql.exec("INSERT INTO kinds VALUES (?, ?, ?, ?, ?)", 42, 1.5, "text", new Uint8Array([1, 2, 3]), null);
  out.insertRows = [insert.rowsRead, insert.rowsWritten];
  const row = sql.exec("SELECT * FROM kinds").one();
  out.row = { ...row, b: [...new Uint8Array(row.b)], blobIsArrayBuffer: row.b instanceof ArrayBuffer };
  sql.exec("INSERT INTO kinds (i) VALUES (?)", 9007199254740991);

  const cursor = sql.exec("SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y' UNION ALL SELECT 3, 'z'");
  out.columnNames = cursor.columnNames;
  out.next = cursor.next();
  out.raw = cursor.raw().toArray();
  out.exhausted = cursor.next();
  out.iterated = [...sql.exec("SELECT i FROM kinds ORDER BY i")];
  out.rawIterated = [...sql.exec("SELECT i FROM kinds ORDER BY i").raw()];
  out.several = sql.exec("CREATE TABLE m (x); INSERT INTO m VALUES (1), (2); SELECT x FROM m WHERE x > ?", 1).toArray();
  out.returning = sql.exec("UPDATE m SET x = x * 10 RETURNING x").toArray();

  out.oneOfNone = thrown(() => sql.exec("SELECT 1 WHERE 0").one());
  out.oneOfMany = thrown(() => sql.exec("SELECT x FROM m").one());
  out.syntax = thrown(() => sql.exec("SELEKT 1"));
  out.noTable = thrown(() => sql.exec("SELECT * FROM nowhere"));
  out.begin = thrown(() => sql.exec("BEGIN TRANSACTION"));
  out.savepoint = thrown(() => sql.exec("SAVEPOINT mine"));
  out.attach = thrown(() => sql.exec("ATTACH DATABASE 'other' AS other"));
  out.reserved = thrown(() => sql.exec("CREATE TABLE _cf_mine (x)"));
  out.pragma = thrown(() => sql.exec("PRAGMA journal_mode = WAL"));
  out.tableInfo = sql.exec("PRAGMA table_info(m)").toArray().map((c) => c.name);
  out.badBinding = thrown(() => sql.exec("SELECT ?", {}));
  out.tooManyBindings = thrown(() => sql.exec("SELECT ?", 1, 2));
  // A failed call changes nothing, earlier statements of the call included.
  sql.exec("CREATE TABLE u (k PRIMARY KEY)");
  out.constraint = thrown(() => sql.exec("INSERT INTO u VALUES (1), (1)"));
  out.severalFailed = thrown(() => sql.exec("INSERT INTO u VALUES (2); INSERT INTO u VALUES (2)"));
  out.afterConstraint = sql.exec("SELECT count(*) AS c FROM u").one().c;

  // transactionSync: kept when the function returns, undone (SQL and key-value) when it throws.
  out.kept = storage.transactionSync(() => {
    sql.exec("INSERT INTO m VALUES (3)");
    return sql.exec("SELECT count(*) AS c FROM m").one().c;
  });
  out.thrownOut = thrown(() =>
    storage.transactionSync(() => {
      sql.exec("INSERT INTO m VALUES (4)");
      storage.kv.put("in-transaction", true);
      throw new Error("changed my mind");
    }),
  );
  out.afterThrow = [sql.exec("SELECT count(*) AS c FROM m").one().c, storage.kv.get("in-transaction") ?? null];

  // The synchronous key-value API, over the same keys as the asynchronous one.
  storage.kv.put("k1", { v: 1 });
  storage.kv.put("k2", [2]);
  out.kv = [storage.kv.get("k1"), storage.kv.delete("k2"), storage.kv.delete("k2"), [...storage.kv.list()]];
  out.size = sql.databaseSize;
  return out;
}

/** `/sql-count`: a counter in SQL, `UPDATE ... RETURNING`. */
export function sqlCount(storage) {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)");
  sql.exec("INSERT OR IGNORE INTO counter VALUES (1, 0)");
  return sql.exec("UPDATE counter SET value = value + 1 WHERE id = 1 RETURNING value").one().value;
}

/** `/sql-read`: the counter and the key-value entry beside it. */
export async function sqlRead(storage) {
  const row = storage.sql.exec("SELECT value FROM counter WHERE id = 1").toArray()[0];
  return { value: row?.value ?? null, kv: (await storage.get("beside")) ?? null, size: storage.sql.databaseSize };
}
