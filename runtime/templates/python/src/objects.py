"""{class}: a Durable Object class for duro. `duro dev` builds it, serves it and reloads it
when a file under src/ changes.

- POST /objects/{class}/{name}/increment: adds one and answers {"count": n}
- GET /objects/{class}/{name}/get: answers {"count": n}
- anything else: 404
"""

from duro import DurableObject, Response


class {class}(DurableObject):
    def fetch(self, request):
        count = self.ctx.storage.get("count") or 0
        if request.method == "POST" and request.path == "/increment":
            self.ctx.storage.put("count", count + 1)
            return Response.json({"count": count + 1})
        if request.method == "GET" and request.path == "/get":
            return Response.json({"count": count})
        return Response("Not found", status=404)
