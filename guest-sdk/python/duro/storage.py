"""`self.ctx.storage`: Cloudflare's storage API over the `duro:object/storage` import. Values
are kept in duro's value encoding, which JavaScript's storage keeps too: a JSON-shaped value is its
JSON, `bytes` a Uint8Array, a `datetime` a Date, a `set` a Set (the README's "Value encoding")."""

from wit_world.imports import storage as _raw

from .errors import lift
from .rpc import decode as _decode
from .rpc import encode as _encode
from .sql import Sql


class StorageError(Exception):
    """A storage call failed; `kind` is the WIT case (`"value-too-large"`, ...)."""

    def __init__(self, kind, message):
        super().__init__(f"storage: {message}")
        self.kind = kind


def _describe(kind, value):
    if kind in ("key-too-large", "value-too-large"):
        what = "key" if kind == "key-too-large" else "value"
        return f"{what} is {value.actual} bytes, the limit is {value.limit}"
    if kind == "too-many-keys":
        return f"{value.actual} keys in one call, the limit is {value.limit}"
    if kind == "result-too-large":
        return f"list result exceeds {value.limit} bytes; pass a smaller limit"
    if kind == "no-transaction":
        return "no open transaction"
    return f"{kind}: {value}"


def _call(f, *args):
    return lift(StorageError, _describe, f, *args)




class _Operations:
    def get(self, key):
        """`get(key)`: the value or None; `get([keys])`: a dict of the keys that exist."""
        if isinstance(key, (list, tuple)):
            return {k: _decode(v) for k, v in _call(_raw.get_many, list(key))}
        data = _call(_raw.get, key)
        return None if data is None else _decode(data)

    def put(self, key, value=None):
        """`put(key, value)`, or `put({key: value, ...})` (all or none)."""
        if isinstance(key, dict):
            _call(_raw.put_many, [(k, _encode(v)) for k, v in key.items()])
        else:
            _call(_raw.put, key, _encode(value))

    def delete(self, key):
        """`delete(key)`: whether it existed; `delete([keys])`: how many existed."""
        if isinstance(key, (list, tuple)):
            return _call(_raw.delete_many, list(key))
        return _call(_raw.delete, key)

    def list(self, prefix=None, start=None, start_after=None, end=None, reverse=False, limit=None):
        """The entries in key order (a dict), bounded as Cloudflare's `list` options say."""
        options = _raw.ListOptions(prefix, start, start_after, end, reverse, limit)
        return {k: _decode(v) for k, v in _call(_raw.list, options)}

    def get_alarm(self):
        """The alarm's time (ms since the epoch), or None."""
        return _call(_raw.get_alarm)

    def set_alarm(self, epoch_ms):
        _call(_raw.set_alarm, int(epoch_ms))

    def delete_alarm(self):
        _call(_raw.delete_alarm)


class Transaction(_Operations):
    """`with storage.transaction() as txn:` — kept when the block ends, dropped if it raises or
    calls `txn.rollback()`."""

    def __init__(self):
        self.rolled_back = False

    def rollback(self):
        self.rolled_back = True

    def __enter__(self):
        _call(_raw.transaction_begin)
        return self

    def __exit__(self, kind, value, traceback):
        if kind is not None or self.rolled_back:
            _call(_raw.transaction_rollback)
        else:
            _call(_raw.transaction_commit)
        return False


class Storage(_Operations):
    def transaction(self):
        return Transaction()

    @property
    def sql(self):
        """The object's SQL database (`self.ctx.storage.sql.exec(...)`)."""
        return Sql()

    def transaction_sync(self, fn):
        """Runs `fn()`: its writes (SQL and key-value) are kept if it returns, undone if it
        raises."""
        with Transaction():
            return fn()

    def delete_all(self):
        _call(_raw.delete_all)
