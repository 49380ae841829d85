//! ws-probe: a test class for WebSocket features. Connect to `/connect?tags=a,b&name=N[&auto]`
//! (tags, an attachment `{"name": N}`, and with `auto` the auto-response "ping" -> "pong"), then
//! send text commands:
//!
//! - `tags`: this socket's tags, as JSON
//! - `who`: the name in this socket's attachment
//! - `version`: [`VERSION`] (the upgrade test patches it to tell two builds apart)
//! - `count:TAG`: how many open sockets carry TAG (`count:` for all)
//! - `flood:N`: N messages of 1 KiB to this socket in one event (a slow-consumer test)
//! - `close`: the object closes this socket with 4000
//! - `alarm:MS`: sets the object's alarm MS ms from now; when it fires, every socket gets
//!   `alarm fired`
//! - anything else: echoed back
//!
//! `websocket-error` tells every other socket: `error:<the error>`.

use duro_sdk::{
    AlarmInfo, DurableObject, Message, Request, Response, Result, State, WebSocket, json, now_ms,
};

/// This build's version marker: `probe-version-1`, or `-2` in a copy whose bytes the upgrade test
/// patched.
static VERSION: &str = "probe-version-1";

struct WsProbe {
    state: State,
}

impl DurableObject for WsProbe {
    fn new(state: State) -> Self {
        WsProbe { state }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        let query = request.query().unwrap_or_default().to_string();
        let param = |name: &str| {
            query.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == name).then(|| v.to_string())
            })
        };
        let tags = param("tags").unwrap_or_default();
        let tags: Vec<&str> = tags.split(',').filter(|t| !t.is_empty()).collect();
        let sockets = self.state.websockets();
        let ws = sockets.accept(&tags)?;
        ws.serialize_attachment(&json!({ "name": param("name") }))?;
        if param("auto").is_some() {
            sockets.set_auto_response(Some(("ping", "pong")));
        }
        Ok(Response::new(101))
    }

    fn websocket_message(&mut self, ws: WebSocket, message: Message) -> Result<()> {
        let Message::Text(text) = &message else {
            return ws.send(&message);
        };
        let sockets = self.state.websockets();
        if text == "tags" {
            ws.send_text(&serde_json::to_string(&ws.tags()?)?)
        } else if text == "version" {
            ws.send_text(std::hint::black_box(VERSION))
        } else if text == "who" {
            let attachment: Option<serde_json::Value> = ws.deserialize_attachment()?;
            let name = attachment.and_then(|a| a["name"].as_str().map(String::from));
            ws.send_text(&name.unwrap_or_default())
        } else if let Some(tag) = text.strip_prefix("count:") {
            let tag = (!tag.is_empty()).then_some(tag);
            ws.send_text(&sockets.get(tag).len().to_string())
        } else if let Some(n) = text.strip_prefix("flood:") {
            let chunk = "x".repeat(1024);
            for _ in 0..n.parse::<u32>().unwrap_or(0) {
                ws.send_text(&chunk)?;
            }
            Ok(())
        } else if text == "close" {
            ws.close(4000, "closed by the object")
        } else if let Some(ms) = text.strip_prefix("alarm:") {
            let ms: i64 = ms.parse().unwrap_or(0);
            self.state.storage().set_alarm(now_ms() + ms)?;
            ws.send_text("alarm set")
        } else {
            ws.send(&message)
        }
    }

    fn alarm(&mut self, _info: AlarmInfo) -> Result<()> {
        for socket in self.state.websockets().get(None) {
            socket.send_text("alarm fired")?;
        }
        Ok(())
    }

    fn websocket_error(&mut self, ws: WebSocket, error: String) -> Result<()> {
        for other in self.state.websockets().get(None) {
            if other != ws {
                other.send_text(&format!("error:{error}"))?;
            }
        }
        Ok(())
    }
}

duro_sdk::export!(WsProbe);
