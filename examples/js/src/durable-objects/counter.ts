// src/durable-objects/counter.ts
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject<Bindings> {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);

    switch (url.pathname) {
      case "/increment": {
        let value = (await this.ctx.storage.get<number>("count")) || 0;
        value++;
        await this.ctx.storage.put("count", value);
        return Response.json({ count: value });
      }

      case "/get": {
        const value = (await this.ctx.storage.get<number>("count")) || 0;
        return Response.json({ count: value });
      }

      case "/reset": {
        await this.ctx.storage.delete("count");
        return Response.json({ count: 0 });
      }

      default:
        return new Response("Not found", { status: 404 });
    }
  }
}
