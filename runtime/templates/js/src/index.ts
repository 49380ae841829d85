// {class}: a Durable Object class for duro, written as for Cloudflare. `duro dev` builds it,
// serves it and reloads it when a file under src/ changes.
//
// - POST /objects/{class}/{name}/increment: adds one and answers {"count": n}
// - GET /objects/{class}/{name}/get: answers {"count": n}
// - anything else: 404
import { DurableObject } from "cloudflare:workers";

export class {class} extends DurableObject {
  async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    const count = (await this.ctx.storage.get<number>("count")) ?? 0;
    if (request.method === "POST" && pathname === "/increment") {
      await this.ctx.storage.put("count", count + 1);
      return Response.json({ count: count + 1 });
    }
    if (request.method === "GET" && pathname === "/get") {
      return Response.json({ count });
    }
    return new Response("Not found", { status: 404 });
  }
}
