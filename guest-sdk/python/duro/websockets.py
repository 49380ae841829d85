"""Hibernatable WebSockets: the runtime holds the connections; a `WebSocket` is a handle (the
runtime's socket id) that is the same object for the instance's life."""

import json as _json

from wit_world.imports import types
from wit_world.imports import websockets as _raw

from .errors import lift


class WebSocketError(Exception):
    def __init__(self, kind, message):
        super().__init__(f"websocket: {message}")
        self.kind = kind


def _call(f, *args):
    return lift(WebSocketError, lambda kind, value: f"{kind}: {value or ''}", f, *args)


class WebSocket:
    def __init__(self, id):
        self.id = id
        self.closed = False

    def send(self, message):
        """Sends a str (text) or bytes (binary)."""
        if isinstance(message, str):
            value = types.Message_Text(message)
        else:
            value = types.Message_Binary(bytes(message))
        _call(_raw.send, self.id, value)

    def close(self, code=1000, reason=""):
        """Closes the socket; closing one that is already closed does nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            _call(_raw.close, self.id, code, reason)
        except WebSocketError as error:
            if error.kind != "unknown-socket":
                raise

    def serialize_attachment(self, value):
        """Keeps a JSON value with the socket (at most 16 KiB); it survives hibernation."""
        _call(_raw.serialize_attachment, self.id, _json.dumps(value).encode())

    def deserialize_attachment(self):
        data = _call(_raw.deserialize_attachment, self.id)
        return None if data is None else _json.loads(data)

    @property
    def tags(self):
        return _call(_raw.get_tags, self.id)


class Sockets:
    """One object instance's sockets, by id."""

    def __init__(self):
        self._by_id = {}

    def get(self, id):
        ws = self._by_id.get(id)
        if ws is None:
            ws = self._by_id[id] = WebSocket(id)
        return ws

    def accept(self, tags):
        return self.get(_call(_raw.accept, [str(t) for t in tags]))

    def all(self, tag=None):
        return [self.get(id) for id in _raw.get_websockets(tag)]

    def forget(self, id):
        self._by_id.pop(id, None)


def message(value):
    """A WIT message as a handler gets it: str or bytes."""
    return value.value
