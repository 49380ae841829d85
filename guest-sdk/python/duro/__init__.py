"""duro's Python SDK: write a Durable Object class for duro in Python.

    from duro import DurableObject, Response

    class Counter(DurableObject):
        def fetch(self, request):
            count = (self.ctx.storage.get("count") or 0) + 1
            self.ctx.storage.put("count", count)
            return Response.json({"count": count})

`self.ctx` has `id` (`str(id)`, `id.name`), `storage`, and the WebSocket calls;
`self.env.BINDING` reaches other objects. Values are stored as JSON, as the Rust and JavaScript
SDKs store them, so a class can move between languages and keep its data. Build with
`guest-sdk/python/build.py` (componentize-py). Handlers are plain (synchronous) methods: storage
calls are answered at once.
"""

from .http import Request, Response, BadRequest
from .storage import Storage, StorageError, Transaction
from .sql import Cursor, Sql, SqlError
from .websockets import WebSocket
from .namespaces import DurableObjectId, Namespace, Stub, CallError, env
from .object import DurableObject, DurableObjectState, AlarmInfo
from .rpc import RemoteError

__all__ = [
    "AlarmInfo",
    "BadRequest",
    "CallError",
    "Cursor",
    "DurableObject",
    "DurableObjectId",
    "DurableObjectState",
    "Namespace",
    "RemoteError",
    "Request",
    "Response",
    "Sql",
    "SqlError",
    "Storage",
    "StorageError",
    "Stub",
    "Transaction",
    "WebSocket",
    "env",
]
