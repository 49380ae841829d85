"""Requests and responses: the WIT records as small Python classes."""

import json as _json
from urllib.parse import urlsplit, parse_qs

from wit_world.imports import types


class BadRequest(Exception):
    """Raised by `Request.json()` on a body that is not JSON: the object answers 400."""


class Headers:
    """Case-insensitive headers; `get` returns the first value."""

    def __init__(self, pairs=None):
        self._pairs = []
        if isinstance(pairs, dict):
            pairs = pairs.items()
        for name, value in pairs or []:
            self._pairs.append((name.lower(), str(value)))

    def get(self, name, default=None):
        name = name.lower()
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def set(self, name, value):
        name = name.lower()
        self._pairs = [(k, v) for k, v in self._pairs if k != name]
        self._pairs.append((name, str(value)))

    def items(self):
        return list(self._pairs)

    def __contains__(self, name):
        return self.get(name) is not None


class Request:
    """An incoming request (or one to send with `stub.fetch`)."""

    def __init__(self, url, method="GET", headers=None, body=b""):
        self.url = url
        self.method = method
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        parts = urlsplit(url)
        self.path = parts.path or "/"
        self.query = {k: v[0] for k, v in parse_qs(parts.query).items()}

    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        try:
            return _json.loads(self.body)
        except ValueError as error:
            raise BadRequest(f"the body is not JSON: {error}") from None

    @staticmethod
    def _from_wit(r):
        return Request(r.url, r.method, Headers(r.headers), r.body)

    def _to_wit(self):
        return types.Request(self.method, self.url, self.headers.items(), self.body)


class Response:
    """`Response("text")`, `Response(b"...", status=201, headers={...})`, `Response.json(data)`."""

    def __init__(self, body=b"", status=200, headers=None):
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body.encode() if isinstance(body, str) else bytes(body or b"")
        if isinstance(body, str) and "content-type" not in self.headers:
            self.headers.set("content-type", "text/plain; charset=utf-8")

    @staticmethod
    def json(data, status=200, headers=None):
        response = Response(_json.dumps(data, separators=(",", ":")).encode(), status, headers)
        response.headers.set("content-type", "application/json")
        return response

    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def body_json(self):
        """The body parsed as JSON (`Response.json` makes a response)."""
        return _json.loads(self.body)

    @staticmethod
    def _from_wit(r):
        return Response(r.body, r.status, Headers(r.headers))

    def _to_wit(self):
        return types.Response(self.status, self.headers.items(), self.body)


def error_response(status, message):
    """`{"error": message}` with `status`, as the Rust and JS SDKs answer a failed handler."""
    return Response.json({"error": message}, status=status)._to_wit()
