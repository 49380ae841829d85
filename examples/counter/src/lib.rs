//! Counter: Cloudflare's example Counter class. One integer under the key "count".
//!
//! - `/increment`: adds one and returns `{"count": n}`
//! - `/get`: returns `{"count": n}` (0 when never incremented)
//! - `/reset`: deletes the count and returns `{"count": 0}`
//! - anything else: 404 "Not found" (the example's text)
//!
//! Build: `cargo build -p duro-example-counter --target wasm32-wasip2 --profile guest`.

use duro_sdk::{DurableObject, Request, Response, Result, State, json};

struct Counter {
    state: State,
}

impl DurableObject for Counter {
    fn new(state: State) -> Self {
        Counter { state }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        let storage = self.state.storage();
        match request.path() {
            "/increment" => {
                let count = storage.get::<i64>("count")?.unwrap_or(0) + 1;
                storage.put("count", &count)?;
                Response::json(&json!({ "count": count }))
            }
            "/get" => {
                let count = storage.get::<i64>("count")?.unwrap_or(0);
                Response::json(&json!({ "count": count }))
            }
            "/reset" => {
                storage.delete("count")?;
                Response::json(&json!({ "count": 0 }))
            }
            _ => Ok(Response::text(404, "Not found")),
        }
    }
}

duro_sdk::export!(Counter);
