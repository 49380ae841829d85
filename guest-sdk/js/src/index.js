// duro's JavaScript SDK: what a class or a worker imports. The build maps
// `cloudflare:workers` here too, so Cloudflare's examples build with their imports unchanged.

export { DurableObject, DurableObjectState } from "./object.js";
export { RpcTarget, RpcStub } from "./rpc.js";
export { WorkerEntrypoint } from "./worker.js";
export { WorkflowEntrypoint } from "./workflows.js";
export { waitUntil } from "./timers.js";
export { DurableObjectId, DurableObjectNamespace, DurableObjectStub, env, exports } from "./namespaces.js";
export { CloseEvent, ErrorEvent, MessageEvent, WebSocket, WebSocketPair, WebSocketRequestResponsePair } from "./websockets.js";
export { Request, Response } from "./http.js";
