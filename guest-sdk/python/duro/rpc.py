"""RPC: `stub.say_hello("Ann")` calls another object's method, and the public methods of a class
are what other objects (in any language: JavaScript's `stub.sayHello("Ann")`) may call.

Arguments and results cross in duro's value encoding (what storage keeps too): JSON, with the
values JSON lacks as objects tagged by "$type". In Python: `None` is null (JavaScript's `undefined` arrives as `None` too), an
int beyond 2**53 is a BigInt, `bytes` a Uint8Array, a `datetime` a Date, a `set` a Set, a dict
with keys that are not strings a Map, an exception an Error (its class name and message). A method
that raises makes the caller's call throw; a call whose method raised raises `RemoteError`."""

import base64
import datetime
import json
import math

_SAFE = 2**53
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
# Methods a stub never reaches: the handlers the runtime calls.
_NOT_RPC = {"fetch", "alarm", "web_socket_message", "web_socket_close", "web_socket_error"}


class RemoteError(Exception):
    """What a called method threw: `name` ("TypeError", ...) and `message`; `value` is the
    thrown value when it was not an error."""

    def __init__(self, name, message, value=None):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.value = value


def _tag(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_SAFE <= value <= _SAFE else {"$type": "BigInt", "value": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$type": "Number", "value": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, (bytes, bytearray)):
        return {"$type": "Uint8Array", "value": base64.b64encode(value).decode()}
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
        return {"$type": "Date", "value": round((moment - _EPOCH).total_seconds() * 1000)}
    if isinstance(value, (set, frozenset)):
        return {"$type": "Set", "value": [_tag(v) for v in value]}
    if isinstance(value, BaseException):
        name = value.name if isinstance(value, RemoteError) else type(value).__name__
        message = value.message if isinstance(value, RemoteError) else str(value)
        return {"$type": "Error", "name": name, "message": message}
    if isinstance(value, (list, tuple)):
        return [_tag(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            out = {k: _tag(v) for k, v in value.items()}
            return {"$type": "Object", "value": out} if "$type" in value else out
        return {"$type": "Map", "value": [[_tag(k), _tag(v)] for k, v in value.items()]}
    raise TypeError(f'Could not serialize object of type "{type(value).__name__}". This type does not support serialization.')


def _untag(json_value, made):
    """The value of one JSON form; `made` numbers the objects met so far, as the encoder did, for
    `{"$type": "Ref"}` (a shared object or a cycle)."""
    if isinstance(json_value, list):
        out = []
        made.append(out)
        out.extend(_untag(v, made) for v in json_value)
        return out
    if not isinstance(json_value, dict):
        return json_value
    if "$type" not in json_value:
        return _fill({}, json_value, made)
    kind, value = json_value["$type"], json_value.get("value")
    if kind == "undefined":
        return None
    if kind == "Number":
        return float("-0" if value == "-0" else value.lower().replace("infinity", "inf"))
    if kind == "BigInt":
        return int(value)
    if kind == "Ref":
        return made[value]
    if kind == "Object":
        return _fill({}, value, made)
    if kind in ("Map", "Set", "Boxed"):
        # Numbered before what they hold, as the encoder numbered them; built after.
        slot = len(made)
        made.append(None)
        if kind == "Map":
            made[slot] = {_untag(k, made): _untag(v, made) for k, v in value}
        elif kind == "Set":
            made[slot] = {_untag(v, made) for v in value}
        else:
            made[slot] = _untag(value, made)
        return made[slot]
    if kind == "Date":
        out = _EPOCH + datetime.timedelta(milliseconds=value)
    elif kind == "Error":
        out = RemoteError(json_value.get("name", "Error"), json_value.get("message", ""))
        made.append(out)
        if "cause" in json_value:
            out.__cause__ = _as_exception(_untag(json_value["cause"], made))
        for k, v in (json_value.get("props") or {}).items():
            setattr(out, k, _untag(v, made))
        return out
    elif kind == "RegExp":
        out = {"source": json_value.get("source"), "flags": json_value.get("flags")}
    else:
        out = base64.b64decode(value)  # ArrayBuffer and the typed arrays
    made.append(out)
    return out


def _fill(out, json_object, made):
    made.append(out)
    for k, v in json_object.items():
        out[k] = _untag(v, made)
    return out


def _as_exception(value):
    return value if isinstance(value, BaseException) else None


def encode(value):
    return json.dumps(_tag(value), separators=(",", ":")).encode()


def decode(data):
    return _untag(json.loads(data), [])


def method_of(obj, name):
    """The public method `name` (camelCase names map to snake_case) an RPC call may run."""
    for candidate in (name, "".join("_" + c.lower() if c.isupper() else c for c in name)):
        if candidate.startswith("_") or candidate in _NOT_RPC:
            continue
        method = getattr(obj, candidate, None)
        if callable(method):
            return method
    raise RemoteError("TypeError", f'The RPC receiver does not implement the method "{name}".')


def thrown(data):
    """The exception a caller raises for an encoded thrown value."""
    value = decode(data)
    return value if isinstance(value, RemoteError) else RemoteError("Error", json.dumps(_tag(value)), value)
