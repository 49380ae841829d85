// duro's JavaScript SDK: what a class or a worker imports. The build maps
// `cloudflare:workers` here too, so Cloudflare's examples build with their imports unchanged.

export { DurableObject, DurableObjectState } from "./object.js";
export { DurableObjectId, DurableObjectNamespace, DurableObjectStub, env } from "./namespaces.js";
export { WebSocket, WebSocketPair, WebSocketRequestResponsePair } from "./websockets.js";
export { Request, Response } from "./http.js";
