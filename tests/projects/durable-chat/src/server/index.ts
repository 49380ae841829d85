// A chat room shaped as Cloudflare's durable-chat template: a partyserver `Server` with
// hibernation, its messages kept in the room's SQL storage (a table created and read in
// `onStart`, an upsert per message with bound parameters), new connections sent the whole log,
// and the worker routing rooms with `routePartykitRequest` over a copy of `env`, the rest to
// the static assets.
import { type Connection, Server, type WSMessage, routePartykitRequest } from "partyserver";

import type { ChatMessage, Message } from "../shared";

type Env = { Chat: DurableObjectNamespace<Chat>; ASSETS: Fetcher };

export class Chat extends Server<Env> {
  static options = { hibernate: true };

  messages = [] as ChatMessage[];

  broadcastMessage(message: Message, exclude?: string[]) {
    this.broadcast(JSON.stringify(message), exclude);
  }

  onStart() {
    this.ctx.storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, user TEXT, role TEXT, content TEXT)`,
    );
    this.messages = this.ctx.storage.sql.exec(`SELECT * FROM messages`).toArray() as ChatMessage[];
  }

  onConnect(connection: Connection) {
    connection.send(JSON.stringify({ type: "all", messages: this.messages } satisfies Message));
  }

  saveMessage(message: ChatMessage) {
    const known = this.messages.some((m) => m.id === message.id);
    this.messages = known
      ? this.messages.map((m) => (m.id === message.id ? message : m))
      : [...this.messages, message];
    this.ctx.storage.sql.exec(
      `INSERT INTO messages (id, user, role, content) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET content = ?`,
      message.id,
      message.user,
      message.role,
      message.content,
      message.content,
    );
  }

  onMessage(connection: Connection, message: WSMessage) {
    this.broadcast(message);
    const parsed = JSON.parse(message as string) as Message;
    if (parsed.type === "add" || parsed.type === "update") {
      const { id, content, user, role } = parsed;
      this.saveMessage({ id, content, user, role });
    }
  }
}

export default {
  async fetch(request, env) {
    return (await routePartykitRequest(request, { ...env })) || env.ASSETS.fetch(request);
  },
} satisfies ExportedHandler<Env>;
