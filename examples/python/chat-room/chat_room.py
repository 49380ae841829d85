"""Cloudflare's example ChatRoom in Python: hibernatable WebSockets; every message goes to every
other socket of the room."""

from duro import DurableObject, Response


class ChatRoom(DurableObject):
    def fetch(self, request):
        if request.headers.get("upgrade") == "websocket":
            # Accept with hibernation support
            self.ctx.accept_websocket(["user-tag"])
            return Response(status=101)
        return Response("Expected WebSocket", status=400)

    def web_socket_message(self, ws, message):
        # Broadcast to all connected clients
        for socket in self.ctx.get_websockets():
            if socket is not ws:
                socket.send(message)

    def web_socket_close(self, ws, code, reason, was_clean):
        ws.close(code, reason)
