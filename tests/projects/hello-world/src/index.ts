// Written as Cloudflare's hello-world Durable Object template is: a class with an RPC method,
// and a Worker that calls it through a stub. (The template's method reads its greeting with
// `this.ctx.storage.sql`; duro has no SQL storage yet, so this one keeps it in the key-value API.)
import { DurableObject } from "cloudflare:workers";

interface Env {
	MY_DURABLE_OBJECT: DurableObjectNamespace<MyDurableObject>;
}

/** A Durable Object's behavior is defined in an exported JavaScript class. */
export class MyDurableObject extends DurableObject<Env> {
	/**
	 * The constructor is invoked once upon creation of the Durable Object, i.e. the first call to
	 * `DurableObjectStub::get` for a given identifier (no-op constructors can be omitted).
	 */
	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
	}

	/** The Durable Object exposes an RPC method `sayHello` which will be invoked when a Durable
	 * Object instance receives a request from a Worker via the same method invocation on the stub. */
	async sayHello(name: string): Promise<string> {
		const greeted = ((await this.ctx.storage.get<number>("greeted")) ?? 0) + 1;
		await this.ctx.storage.put("greeted", greeted);
		return `Hello, ${name}! (greeting ${greeted} of ${this.ctx.id.name})`;
	}
}

export default {
	/** This is the standard fetch handler for a Cloudflare Worker. */
	async fetch(request, env, ctx): Promise<Response> {
		// Create a stub to open a communication channel with the Durable Object instance named
		// after the request's path.
		const stub = env.MY_DURABLE_OBJECT.getByName(new URL(request.url).pathname);

		// Call the `sayHello()` RPC method on the stub to invoke the method on the remote
		// Durable Object instance.
		const greeting = await stub.sayHello("world");

		return new Response(greeting);
	},
} satisfies ExportedHandler<Env>;
