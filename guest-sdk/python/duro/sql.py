"""`self.ctx.storage.sql`: Cloudflare's SQL storage API over the `duro:object/sql` import. The
host runs the SQL (one SQLite database per object, committed with the event's other writes);
a cursor holds the rows it returned. Values: None, int, float, str, bytes."""

from componentize_py_types import Err
from wit_world.imports import sql as _raw


class SqlError(Exception):
    """An SQL call failed: SQLite's message, or why duro refused the statement."""


def _bind(value):
    if value is None:
        return _raw.Value_Null()
    if isinstance(value, bool):
        return _raw.Value_Integer(int(value))
    if isinstance(value, int):
        return _raw.Value_Integer(value)
    if isinstance(value, float):
        return _raw.Value_Real(value)
    if isinstance(value, str):
        return _raw.Value_Text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _raw.Value_Blob(bytes(value))
    raise TypeError(f"sql.exec: cannot bind a {type(value).__name__} (use None, int, float, str or bytes)")


def _lift(value):
    return None if isinstance(value, _raw.Value_Null) else value.value


class Cursor:
    """What `exec` returns: iterate it for rows as dicts, or take `to_array()`, `one()`, `raw()`."""

    def __init__(self, cursor):
        self.column_names = list(cursor.columns)
        self.rows_read = cursor.rows_read
        self.rows_written = cursor.rows_written
        self._rows = iter(cursor.rows)

    def __iter__(self):
        return self

    def __next__(self):
        return dict(zip(self.column_names, map(_lift, next(self._rows))))

    def to_array(self):
        """The rows left, as dicts."""
        return list(self)

    def one(self):
        """The one row left; an error unless there is exactly one."""
        rows = self.to_array()
        if len(rows) != 1:
            count = "no results" if not rows else "multiple results"
            raise SqlError(f"Expected exactly one result from SQL query, but got {count}.")
        return rows[0]

    def raw(self):
        """The rows left as lists of values."""
        return ([_lift(v) for v in row] for row in self._rows)


class Sql:
    def exec(self, query, *bindings):
        """Runs `query` (one or more statements; `bindings` go to the last) and returns its
        cursor. A failed call changes nothing."""
        try:
            return Cursor(_raw.exec(query, [_bind(b) for b in bindings]))
        except Err as error:
            raise SqlError(error.value) from None

    @property
    def database_size(self):
        """Bytes the database takes."""
        try:
            return _raw.database_size()
        except Err as error:
            raise SqlError(error.value) from None
