"""`self.env.COUNTER`: Durable Object namespaces over the `duro:object/namespaces` import, and
`self.env.GREETING`: the deploy config's vars and secrets (strings) over `duro:object/env`."""

from wit_world.imports import env as _vars
from wit_world.imports import namespaces as _raw

from componentize_py_types import Err

from . import rpc
from .errors import lift

from .http import Request, Response


class CallError(Exception):
    """A namespace call failed; `kind` is the WIT case (`"unknown-binding"`, `"timeout"`, ...)."""

    def __init__(self, kind, message):
        super().__init__(f"call: {message}")
        self.kind = kind


def _call(f, *args):
    return lift(CallError, lambda kind, value: f"{kind}: {value}", f, *args)


class DurableObjectId:
    def __init__(self, hex, name=None):
        self._hex = hex
        self.name = name

    def __str__(self):
        return self._hex

    def __eq__(self, other):
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __hash__(self):
        return hash(self._hex)


class Stub:
    def __init__(self, stub, id):
        self._stub = stub
        self.id = id

    def fetch(self, request, method="GET", headers=None, body=b""):
        """Calls the object's fetch with a Request, or a URL (`"http://do/increment"`)."""
        if not isinstance(request, Request):
            request = Request(request, method, headers, body)
        return Response._from_wit(_call(self._stub.fetch, request._to_wit()))

    def call(self, method, *args):
        """Calls the object's method `method` (RPC) with `args`; returns what it returned, raises
        `RemoteError` with what it threw."""
        outcome = _call(self._stub.call, method, rpc.encode(list(args)))
        if isinstance(outcome, Err):
            raise rpc.thrown(outcome.value)
        return rpc.decode(outcome.value)

    def __getattr__(self, name):
        """`stub.say_hello("Ann")` is `stub.call("say_hello", "Ann")`."""
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.call(name, *args)


class Namespace:
    def __init__(self, binding):
        self._binding = binding

    def id_from_name(self, name):
        return DurableObjectId(_call(_raw.id_from_name, self._binding, name), name)

    def new_unique_id(self):
        return DurableObjectId(_call(_raw.new_unique_id, self._binding))

    def id_from_string(self, id):
        return DurableObjectId(_call(_raw.id_from_string, self._binding, id))

    def get(self, id):
        return Stub(_call(_raw.get, self._binding, str(id)), id)

    def get_by_name(self, name):
        return self.get(self.id_from_name(name))


class _Env:
    """A var or secret's value by its name; any other attribute is the namespace bound under that
    name (an unbound one fails at first use)."""

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        value = _vars.get(name)
        return Namespace(name) if value is None else value


env = _Env()
