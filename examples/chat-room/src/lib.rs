//! ChatRoom: Cloudflare's example chat room on hibernatable WebSockets. Every message is broadcast to
//! every other socket in the room (text stays text, binary stays binary); a plain request gets
//! 400 "Expected WebSocket". The runtime holds the sockets, so an idle room hibernates.
//!
//! Build: `cargo build -p duro-example-chat-room --target wasm32-wasip2 --profile guest`.

use duro_sdk::{DurableObject, Message, Request, Response, Result, State, WebSocket};

struct ChatRoom {
    state: State,
}

impl DurableObject for ChatRoom {
    fn new(state: State) -> Self {
        ChatRoom { state }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        let upgrade = request.header("upgrade").unwrap_or_default();
        if !upgrade.eq_ignore_ascii_case("websocket") {
            return Ok(Response::text(400, "Expected WebSocket"));
        }
        self.state.websockets().accept(&["user-tag"])?;
        Ok(Response::new(101))
    }

    fn websocket_message(&mut self, ws: WebSocket, message: Message) -> Result<()> {
        for other in self.state.websockets().get(None) {
            if other != ws {
                // A peer that is already closing just misses the message.
                let _ = other.send(&message);
            }
        }
        Ok(())
    }

    fn websocket_close(
        &mut self,
        ws: WebSocket,
        code: u16,
        reason: String,
        _clean: bool,
    ) -> Result<()> {
        // 1005/1006 are reserved and may not be sent in a close frame.
        let code = if code == 1005 || code == 1006 {
            1000
        } else {
            code
        };
        let _ = ws.close(code, &reason);
        Ok(())
    }
}

duro_sdk::export!(ChatRoom);
