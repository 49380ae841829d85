// Rooms on partyserver: `routePartykitRequest` finds the namespaces among `env`'s values, the
// server learns its name (`this.name`), loads its state in `onStart` (partyserver runs it under
// `blockConcurrencyWhile`; here it waits on a timer too), and its hooks refuse a connection
// without a token and redirect an old path.
import { Server, getServerByName, routePartykitRequest, type Connection, type ConnectionContext } from "partyserver";

type Env = { Chat: DurableObjectNamespace<Chat> };

export class Chat extends Server<Env> {
  messages: string[] = [];
  starts = 0;

  async onStart() {
    await new Promise((resolve) => setTimeout(resolve, 100));
    this.messages = (await this.ctx.storage.get<string[]>("messages")) ?? [];
    this.starts += 1;
  }

  onConnect(connection: Connection, ctx: ConnectionContext) {
    connection.send(JSON.stringify({ room: this.name, id: connection.id, backlog: this.messages }));
  }

  async onMessage(connection: Connection, message: string | ArrayBuffer) {
    this.messages.push(String(message));
    await this.ctx.storage.put("messages", this.messages);
    this.broadcast(JSON.stringify({ from: connection.id, message: String(message) }));
  }

  onRequest(request: Request) {
    return Response.json({ room: this.name, messages: this.messages, starts: this.starts });
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/direct/")) {
      // A server reached by name through partyserver's helper (an RPC call sets its name).
      const stub = await getServerByName(env.Chat, url.pathname.slice("/direct/".length));
      return stub.fetch(request);
    }
    const answer = await routePartykitRequest(request, env, {
      onBeforeConnect: (req) => {
        if (new URL(req.url).searchParams.get("token") !== "letmein") {
          return new Response("Unauthorized", { status: 401 });
        }
      },
      onBeforeRequest: (req) => {
        const old = new URL(req.url);
        if (old.searchParams.has("old")) {
          old.searchParams.delete("old");
          return Response.redirect(old.toString(), 302);
        }
      },
    });
    return answer ?? new Response("Not found", { status: 404 });
  },
};
