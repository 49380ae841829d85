// Written in the shape of Cloudflare's hello-world Durable Object template: a SQLite-backed
// class whose RPC method reads its greeting with `this.ctx.storage.sql`, and a Worker that
// calls it through a stub got from `idFromName`. The class also counts its greetings in a table.
import { DurableObject } from "cloudflare:workers";

interface Env {
	MY_DURABLE_OBJECT: DurableObjectNamespace<MyDurableObject>;
}

/** The class: one instance per name, each with its own SQLite database. */
export class MyDurableObject extends DurableObject<Env> {
	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
	}

	/** The RPC method the Worker calls on its stub. */
	async sayHello(): Promise<string> {
		const result = this.ctx.storage.sql
			.exec("SELECT 'Hello, World!' as greeting")
			.one() as { greeting: string };
		const sql = this.ctx.storage.sql;
		sql.exec("CREATE TABLE IF NOT EXISTS greetings (n INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER)");
		const { n } = sql.exec("INSERT INTO greetings (at) VALUES (?) RETURNING n", Date.now()).one() as { n: number };
		return `${result.greeting} (greeting ${n} of ${this.ctx.id.name})`;
	}
}

export default {
	/** The Worker: one object per path. */
	async fetch(request, env, ctx): Promise<Response> {
		const id: DurableObjectId = env.MY_DURABLE_OBJECT.idFromName(new URL(request.url).pathname);
		const stub = env.MY_DURABLE_OBJECT.get(id);
		const greeting = await stub.sayHello();
		return new Response(greeting);
	},
} satisfies ExportedHandler<Env>;
