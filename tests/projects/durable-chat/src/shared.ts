// The messages the room and its clients exchange.
export type ChatMessage = {
  id: string;
  content: string;
  user: string;
  role: "user" | "assistant";
};

export type Message =
  | { type: "add"; id: string; content: string; user: string; role: "user" | "assistant" }
  | { type: "update"; id: string; content: string; user: string; role: "user" | "assistant" }
  | { type: "all"; messages: ChatMessage[] };
