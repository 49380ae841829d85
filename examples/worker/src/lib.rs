//! Cloudflare's example Hono app as a duro worker: the stateless front that receives every ingress
//! request and reaches the objects through the deploy config's bindings (`COUNTER`, `ROOM`).
//!
//! - `POST /api/counters/:name/increment` -> `COUNTER.idFromName(name)`, `stub.fetch("http://do/increment")`
//! - `GET /api/counters/:name` -> the counter's `/get`, its response passed through
//! - `GET /api/rooms/:name/ws` -> the WebSocket upgrade forwarded to `ROOM.idFromName(name)`
//!   (a plain request: 400 "Expected WebSocket")
//! - `POST /api/groups/:group/counters/:name/increment` -> the `GROUP` object `group`, which
//!   counts the group's total and calls the counter itself (an object calling an object)
//! - anything else: 404 "404 Not Found" (Hono's default)
//!
//! Build: `cargo build -p duro-example-worker --target wasm32-wasip2 --profile guest`.

use duro_sdk::worker::Worker;
use duro_sdk::{Namespace, Request, Response, Result, json};

struct App;

/// The path's segments, for matching routes.
fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The stub of the object `name` of `binding`.
fn object(binding: &str, name: &str) -> Result<duro_sdk::Stub> {
    let namespace = Namespace::new(binding);
    namespace.get(&namespace.id_from_name(name)?)
}

impl Worker for App {
    fn new() -> Self {
        App
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        let path = request.path().to_string();
        match (request.method(), segments(&path).as_slice()) {
            ("POST", ["api", "counters", name, "increment"]) => {
                let response =
                    object("COUNTER", name)?.fetch(Request::new("GET", "http://do/increment"))?;
                let data: serde_json::Value = response.json_body()?;
                Response::json(&data)
            }
            ("GET", ["api", "counters", name]) => {
                object("COUNTER", name)?.fetch(Request::new("GET", "http://do/get"))
            }
            ("GET", ["api", "rooms", name, "ws"]) => {
                if request.header("upgrade") != Some("websocket") {
                    return Ok(Response::text(400, "Expected WebSocket"));
                }
                object("ROOM", name)?.fetch(request.with_url("http://do/ws"))
            }
            ("POST", ["api", "groups", group, "counters", name, "increment"]) => {
                let url = format!("http://do/increment?counter={name}");
                let response = object("GROUP", group)?.fetch(Request::new("POST", &url))?;
                let data: serde_json::Value = response.json_body()?;
                Response::json(&json!(data))
            }
            _ => Ok(Response::text(404, "404 Not Found")),
        }
    }
}

duro_sdk::export_worker!(App);
