// The SQL benchmark's class, one source for duro and workerd (scripts/bench-sql): a counter in
// SQL (`UPDATE ... RETURNING`) and an insert-heavy chat log, on SQLite-backed Durable Objects.
import { DurableObject } from "cloudflare:workers";

const BODY = "x".repeat(100);

export class SqlBench extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL);
       INSERT OR IGNORE INTO counter VALUES (1, 0);
       CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)`,
    );
  }

  async fetch(request) {
    const { pathname } = new URL(request.url);
    const sql = this.ctx.storage.sql;
    switch (pathname) {
      case "/increment":
        return Response.json(sql.exec("UPDATE counter SET value = value + 1 WHERE id = 1 RETURNING value").one());
      case "/append": {
        const { id } = sql.exec("INSERT INTO messages (at, body) VALUES (?, ?) RETURNING id", Date.now(), BODY).one();
        return Response.json({ id });
      }
      case "/get":
        return Response.json(sql.exec("SELECT value FROM counter WHERE id = 1").one());
      default:
        return new Response("not found", { status: 404 });
    }
  }
}

// workerd's route to the objects (duro is loaded on its direct object routes).
export default {
  async fetch(request, env) {
    const [, api, name, op] = new URL(request.url).pathname.split("/");
    if (api !== "sql" || !name || !op) return new Response("not found", { status: 404 });
    return env.SQL.get(env.SQL.idFromName(name)).fetch(new Request(`http://do/${op}`, request));
  },
};
