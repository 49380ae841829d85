"""The `DurableObject` base class and the component's exports for a module's classes. One
instance of the class lives per object while the object is live; it is made at the object's first
event, never at build time (componentize-py runs module code while building). Objects share the
component instance (the shared-instance world), each keyed by its id."""

import traceback
from dataclasses import dataclass

from wit_world.imports import state as _state

from . import rpc
from .http import BadRequest, Request, Response, error_response
from .namespaces import DurableObjectId, env
from .storage import Storage
from .websockets import Sockets, message


@dataclass
class AlarmInfo:
    retry_count: int
    is_retry: bool


class DurableObjectState:
    """`self.ctx`."""

    def __init__(self, sockets):
        self._sockets = sockets
        self.id = DurableObjectId(_state.id(), _state.name())
        self.storage = Storage()

    def accept_websocket(self, tags=()):
        """Accepts the upgrade of the current fetch (hibernatable); answer `Response(status=101)`."""
        return self._sockets.accept(tags)

    def get_websockets(self, tag=None):
        return self._sockets.all(tag)

    def get_tags(self, ws):
        return ws.tags

    def set_websocket_auto_response(self, request=None, response=None):
        """A text message the runtime answers on every socket without waking the object."""
        from wit_world.imports import websockets as _raw

        _raw.set_auto_response(None if request is None else (request, response))


class DurableObject:
    """Subclass it and define `fetch(self, request)`; optionally `alarm(self, info)`,
    `web_socket_message(self, ws, message)`, `web_socket_close(self, ws, code, reason, was_clean)`,
    `web_socket_error(self, ws, error)`."""

    def __init__(self, ctx, env):
        self.ctx = ctx
        self.env = env


def _find_class(modules, class_name):
    classes = {}
    for module in modules:
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, DurableObject) and value is not DurableObject:
                classes[name] = value
    if class_name in classes:
        return classes[class_name]
    if len(classes) == 1:
        return next(iter(classes.values()))
    names = ", ".join(sorted(classes)) or "none"
    raise RuntimeError(f'this component has no class "{class_name}" (its DurableObject classes: {names})')


def _report(what):
    print(f"{what} failed:\n{traceback.format_exc()}", flush=True)


def object_world(base, *modules):
    """The `WitWorld` export class running the class named like this object's class. One instance
    may hold many objects of the class (the shared-instance world): each event runs on the object
    `state.id()` names, made at its first event and dropped when the runtime evicts it."""
    objects = {}

    def live():
        """The running event's object and its sockets."""
        key = _state.id()
        entry = objects.get(key)
        if entry is None:
            sockets = Sockets()
            cls = _find_class(modules, _state.class_name())
            entry = objects[key] = (cls(DurableObjectState(sockets), env), sockets)
        return entry

    def on_socket(o, handler, *args):
        if hasattr(o, handler):
            try:
                getattr(o, handler)(*args)
            except Exception:
                _report(handler)

    class World(base):
        def fetch(self, request):
            try:
                response = live()[0].fetch(Request._from_wit(request))
                if not isinstance(response, Response):
                    raise TypeError(f"fetch must return a Response, got {type(response).__name__}")
                return response._to_wit()
            except BadRequest as error:
                return error_response(400, str(error))
            except Exception as error:
                _report("fetch")
                return error_response(500, f"{type(error).__name__}: {error}")

        def alarm(self, info):
            from componentize_py_types import Err

            o = live()[0]
            if not hasattr(o, "alarm"):
                raise Err("the class has no alarm method")
            try:
                o.alarm(AlarmInfo(info.retry_count, info.is_retry))
            except Exception as error:
                _report("alarm")
                raise Err(f"{type(error).__name__}: {error}")

        def websocket_message(self, ws, value):
            o, sockets = live()
            on_socket(o, "web_socket_message", sockets.get(ws), message(value))

        def websocket_close(self, ws, code, reason, was_clean):
            o, sockets = live()
            socket = sockets.get(ws)
            socket.closed = True
            on_socket(o, "web_socket_close", socket, code, reason, was_clean)
            sockets.forget(ws)

        def websocket_error(self, ws, error):
            o, sockets = live()
            on_socket(o, "web_socket_error", sockets.get(ws), error)

        def rpc(self, method, args):
            from componentize_py_types import Err

            try:
                return rpc.encode(rpc.method_of(live()[0], method)(*rpc.decode(args)))
            except Exception as error:
                if not isinstance(error, rpc.RemoteError):
                    _report(f"rpc {method}")
                raise Err(rpc.encode(error))

        def wake(self):
            """A Python class keeps no timers: the runtime never asks it to wake."""

        def evict(self, id):
            objects.pop(id, None)

    return World
