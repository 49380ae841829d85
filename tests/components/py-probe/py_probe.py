"""A Python test class (tests/languages.rs): each route exercises one part of the Python SDK's
Durable Object API and answers what it saw as JSON."""

import time
from urllib.parse import urlparse

from duro import DurableObject, RemoteError, Response
from duro.storage import StorageError


def failure(f):
    """What a failing call raised: its kind and message, or None."""
    try:
        f()
        return None
    except StorageError as error:
        return {"kind": error.kind, "message": str(error)}
    except Exception as error:
        return {"kind": None, "message": str(error)}


class PyProbe(DurableObject):
    def fetch(self, request):
        path = urlparse(request.url).path
        storage = self.ctx.storage
        if path == "/storage":
            out = {}
            storage.put("a", 1)
            storage.put({"b": {"nested": [True, None]}, "c": "three", "user:1": "ann", "user:2": "bob"})
            out["get"] = storage.get("b")
            out["missing"] = storage.get("nope")
            out["getMany"] = storage.get(["a", "c", "nope"])
            out["list"] = storage.list()
            out["prefix"] = list(storage.list(prefix="user:"))
            out["range"] = list(storage.list(start="b", end="user:1"))
            out["startAfter"] = list(storage.list(start_after="b", limit=2))
            out["reverse"] = list(storage.list(reverse=True, limit=2))
            out["deleted"] = storage.delete("a")
            out["deletedAgain"] = storage.delete("a")
            out["deletedMany"] = storage.delete(["c", "nope", "user:2"])
            with storage.transaction() as txn:
                txn.put("t", 1)
                out["kept"] = txn.get("t") + 1

            def thrown():
                with storage.transaction() as txn:
                    txn.put("gone", 1)
                    raise ValueError("no thanks")

            out["thrown"] = failure(thrown)
            with storage.transaction() as txn:
                txn.put("gone-too", 1)
                txn.rollback()
            out["afterTransactions"] = list(storage.list())
            out["tooLarge"] = failure(lambda: storage.put("big", "x" * 200_000))
            # Values JSON lacks, in the encoding JavaScript's storage keeps (bytes stay bytes).
            storage.put("typed", {"bytes": b"\x00\xff", "set": {1}, "big": 2**60})
            typed = storage.get("typed")
            out["typed"] = [type(typed["bytes"]).__name__, typed["bytes"] == b"\x00\xff", typed["set"] == {1}, typed["big"] == 2**60]
            storage.delete("typed")
            out["alarmBefore"] = storage.get_alarm()
            storage.set_alarm(int(time.time() * 1000) + 3_600_000)
            out["alarmSet"] = storage.get_alarm() - int(time.time() * 1000)
            storage.delete_alarm()
            out["alarmAfter"] = storage.get_alarm()
            storage.delete_all()
            out["afterDeleteAll"] = len(storage.list())
            return Response.json(out)
        if path == "/sql":
            return Response.json(self.sql_answers())
        if path == "/memory":
            # State kept in memory only: each object counts its own requests.
            self.hits = getattr(self, "hits", 0) + 1
            return Response.json({"hits": self.hits, "id": str(self.ctx.id)})
        if path == "/env":
            # A var or secret of the deploy config, by the query's name.
            return Response.json({"value": getattr(self.env, urlparse(request.url).query)})
        if path == "/rpc":
            # RPC to the Probe (JavaScript) named by the query: a method with arguments, and one
            # that throws.
            stub = self.env.PROBE.get_by_name(urlparse(request.url).query)
            try:
                stub.fail("range")
                thrown = None
            except RemoteError as error:
                thrown = {"name": error.name, "message": error.message}
            return Response.json({"sum": stub.add(20, 22), "echo": [repr(v) for v in stub.echo(b"\x01", {1, 2})], "thrown": thrown})
        return Response("Not found", status=404)

    def sql_answers(self):
        """The SQL API's answers (`self.ctx.storage.sql`), from a fresh database."""
        storage = self.ctx.storage
        sql = storage.sql
        out = {"sizeEmpty": sql.database_size}
        sql.exec("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
        inserted = sql.exec("INSERT INTO t VALUES (?, ?, ?, ?, ?)", 7, 0.5, "py", b"\x01\x02", None)
        out["written"] = inserted.rows_written
        row = sql.exec("SELECT * FROM t").one()
        out["row"] = {**row, "b": list(row["b"])}
        cursor = sql.exec("SELECT i, s FROM t")
        out["columns"] = cursor.column_names
        out["raw"] = list(cursor.raw())
        out["error"] = failure(lambda: sql.exec("SELEKT 1"))
        out["none"] = failure(lambda: sql.exec("SELECT 1 WHERE 0").one())

        def undone():
            sql.exec("DELETE FROM t")
            storage.put("undone", True)
            raise ValueError("changed my mind")

        out["undone"] = failure(lambda: storage.transaction_sync(undone))
        out["afterUndone"] = [sql.exec("SELECT count(*) AS c FROM t").one()["c"], storage.get("undone")]
        out["kept"] = storage.transaction_sync(lambda: sql.exec("UPDATE t SET i = 8 RETURNING i").one())
        out["size"] = sql.database_size
        return out

    # RPC methods, called from JavaScript as `stub.sayHello(...)` and from Rust as `call("sayHello")`.
    def say_hello(self, name):
        return f"Hello, {name}!"

    def fail(self):
        raise ValueError("python says no")
