import { DurableObject } from "cloudflare:workers";

interface Env {
  ASSETS: Fetcher;
  VISITS: DurableObjectNamespace<Visits>;
}

/** Counts the visits of each page of the site. */
export class Visits extends DurableObject<Env> {
  async hit(page: string): Promise<number> {
    const visits = ((await this.ctx.storage.get<number>(page)) ?? 0) + 1;
    await this.ctx.storage.put(page, visits);
    return visits;
  }

  async count(page: string): Promise<number> {
    return (await this.ctx.storage.get<number>(page)) ?? 0;
  }
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/api/visits": {
        const page = url.searchParams.get("page") ?? "/";
        return Response.json({ page, visits: await env.VISITS.getByName("site").hit(page) });
      }
      case "/api/count": {
        const page = url.searchParams.get("page") ?? "/";
        return Response.json({ page, visits: await env.VISITS.getByName("site").count(page) });
      }
      case "/api/later": {
        // Counted after the response, as analytics usually are.
        const page = url.searchParams.get("page") ?? "/";
        ctx.waitUntil(
          (async () => {
            await new Promise((resolve) => setTimeout(resolve, 20));
            await env.VISITS.getByName("site").hit(page);
          })(),
        );
        return new Response("counted later", { status: 202 });
      }
      case "/api/loud.css": {
        // An asset through the binding, rewritten on the way out.
        const css = await env.ASSETS.fetch(new URL("/style.css", request.url));
        return new Response((await css.text()).toUpperCase(), {
          headers: { "content-type": css.headers.get("content-type") ?? "text/css" },
        });
      }
      case "/api/env":
        return Response.json(Object.keys(env).sort());
      default:
        return Response.json({ error: `no API route ${url.pathname}` }, { status: 404 });
    }
  },
} satisfies ExportedHandler<Env>;
