// src/index.ts
import { Hono } from "hono";
export { Counter } from "./durable-objects/counter";
export { ChatRoom } from "./durable-objects/chat-room";
export { Scheduler } from "./durable-objects/scheduler";

type Bindings = {
  COUNTER: DurableObjectNamespace;
  ROOM: DurableObjectNamespace;
};

const app = new Hono<{ Bindings: Bindings }>();
app.post("/api/counters/:name/increment", async (c) => {
  const name = c.req.param("name");

  // Deterministic ID from a name (same name = same DO instance)
  const id = c.env.COUNTER.idFromName(name);
  const stub = c.env.COUNTER.get(id);

  const res = await stub.fetch(new Request("http://do/increment"));
  const data = await res.json();

  return c.json(data);
});

app.get("/api/counters/:name", async (c) => {
  const name = c.req.param("name");
  const id = c.env.COUNTER.idFromName(name);
  const stub = c.env.COUNTER.get(id);

  const res = await stub.fetch(new Request("http://do/get"));
  return new Response(res.body, res);
});

app.get("/api/rooms/:name/ws", async (c) => {
  if (c.req.header("Upgrade") !== "websocket") {
    return c.text("Expected WebSocket", 400);
  }

  const id = c.env.ROOM.idFromName(c.req.param("name"));
  const stub = c.env.ROOM.get(id);
  return stub.fetch(c.req.raw);
});

export default app;
