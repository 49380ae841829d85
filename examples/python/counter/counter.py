"""Cloudflare's example Counter in Python: `/increment`, `/get`, `/reset`, else 404."""

from duro import DurableObject, Response


class Counter(DurableObject):
    def fetch(self, request):
        if request.path == "/increment":
            value = (self.ctx.storage.get("count") or 0) + 1
            self.ctx.storage.put("count", value)
            return Response.json({"count": value})
        if request.path == "/get":
            return Response.json({"count": self.ctx.storage.get("count") or 0})
        if request.path == "/reset":
            self.ctx.storage.delete("count")
            return Response.json({"count": 0})
        return Response("Not found", status=404)
