// A chat server written against the same Cloudflare APIs as the workers chat demo, for duro's
// tests: rooms are Durable Objects holding hibernatable WebSockets, the last messages kept in
// storage (read back newest first), one rate limiter object per client address, reached from the
// room through a stub while a socket message is handled, its cooldown waited out with setTimeout.

import PAGE from "./chat.html";

/** Runs `handler`, answering a thrown error as a 500 with its message. */
async function guarded(handler) {
  try {
    return await handler();
  } catch (error) {
    return new Response(`${error}\n${(error && error.stack) || ""}`, { status: 500 });
  }
}

export default {
  async fetch(request, env) {
    return guarded(async () => {
      const url = new URL(request.url);
      const parts = url.pathname.slice(1).split("/");
      if (url.pathname === "/") {
        return new Response(PAGE, { headers: { "Content-Type": "text/html;charset=UTF-8" } });
      }
      if (parts[0] !== "api" || parts[1] !== "room") return new Response("Not found", { status: 404 });
      if (parts.length === 2 && request.method === "POST") {
        // A private room: an id nobody can guess.
        return new Response(env.rooms.newUniqueId().toString());
      }
      const name = parts[2] ?? "";
      let id;
      if (/^[0-9a-f]{64}$/.test(name)) id = env.rooms.idFromString(name);
      else if (name.length > 0 && name.length <= 32) id = env.rooms.idFromName(name);
      else return new Response("Name too long", { status: 404 });
      const rest = new URL(request.url);
      rest.pathname = "/" + parts.slice(3).join("/");
      return env.rooms.get(id).fetch(rest, request);
    });
  },
};

export class ChatRoom {
  constructor(state, env) {
    this.state = state;
    this.storage = state.storage;
    this.env = env;
    this.lastTimestamp = 0;
  }

  async fetch(request) {
    return guarded(async () => {
      const url = new URL(request.url);
      if (url.pathname !== "/websocket") return new Response("Not found", { status: 404 });
      if (request.headers.get("Upgrade") !== "websocket") {
        return new Response("expected websocket", { status: 400 });
      }
      const ip = request.headers.get("CF-Connecting-IP");
      const [client, server] = Object.values(new WebSocketPair());
      this.state.acceptWebSocket(server);
      const limiterId = this.env.limiters.idFromName(ip).toString();
      server.serializeAttachment({ limiterId, ip, name: null });
      // The backlog: the newest messages, oldest first.
      const backlog = [...(await this.storage.list({ reverse: true, limit: 100 })).values()].reverse();
      for (const message of backlog) server.send(message);
      server.send(JSON.stringify({ ready: true, ip }));
      return new Response(null, { status: 101, webSocket: client });
    });
  }

  limiterOf(ws) {
    ws.limiter ??= new RateLimiterClient(
      () => this.env.limiters.get(this.env.limiters.idFromString(ws.deserializeAttachment().limiterId)),
      (error) => ws.close(1011, String(error.message).slice(0, 100)),
    );
    return ws.limiter;
  }

  async webSocketMessage(ws, text) {
    const session = ws.deserializeAttachment();
    const data = JSON.parse(text);
    if (!session.name) {
      session.name = String(data.name || "anonymous").slice(0, 32);
      ws.serializeAttachment(session);
      this.broadcast({ joined: session.name });
      return;
    }
    if (!this.limiterOf(ws).checkLimit()) {
      ws.send(JSON.stringify({ error: "Your IP is being rate-limited, please try again later." }));
      return;
    }
    const timestamp = Math.max(Date.now(), this.lastTimestamp + 1);
    this.lastTimestamp = timestamp;
    const message = JSON.stringify({ name: session.name, message: String(data.message), timestamp });
    this.broadcast(message);
    await this.storage.put(new Date(timestamp).toISOString(), message);
  }

  broadcast(message) {
    const text = typeof message === "string" ? message : JSON.stringify(message);
    for (const ws of this.state.getWebSockets()) {
      try {
        ws.send(text);
      } catch {
        // A socket that went away; its close handler tidies up.
      }
    }
  }

  async webSocketClose(ws, code) {
    const session = ws.deserializeAttachment();
    if (session && session.name) this.broadcast({ quit: session.name });
  }
}

// The limiter: a burst of GRACE_S seconds' worth of messages, then one every COST_S seconds.
// Its state is memory only, as in Cloudflare's demo.
const COST_S = 1;
const GRACE_S = 3;

export class RateLimiter {
  constructor() {
    this.nextAllowedTime = 0;
  }

  async fetch(request) {
    const now = Date.now() / 1000;
    this.nextAllowedTime = Math.max(now, this.nextAllowedTime);
    if (request.method === "POST") this.nextAllowedTime += COST_S;
    const cooldown = Math.max(0, this.nextAllowedTime - now - GRACE_S);
    return new Response(cooldown);
  }
}

/** The room's side: at most one call to the limiter in flight; while it cools down, refuse. */
class RateLimiterClient {
  constructor(getStub, reportError) {
    this.getStub = getStub;
    this.reportError = reportError;
    this.limiter = getStub();
    this.inCooldown = false;
  }

  checkLimit() {
    if (this.inCooldown) return false;
    this.inCooldown = true;
    this.callLimiter(); // not awaited: it ends after the message's event
    return true;
  }

  async callLimiter() {
    try {
      let response;
      try {
        response = await this.limiter.fetch("https://limiter/", { method: "POST" });
      } catch {
        this.limiter = this.getStub(); // a broken stub: one retry with a new one
        response = await this.limiter.fetch("https://limiter/", { method: "POST" });
      }
      const cooldown = +(await response.text());
      await new Promise((resolve) => setTimeout(resolve, cooldown * 1000));
      this.inCooldown = false;
    } catch (error) {
      this.reportError(error);
    }
  }
}
