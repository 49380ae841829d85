//! CounterGroup: an object that calls another object. `POST /increment?counter=NAME` adds one to
//! the group's own total, then increments the Counter `NAME` (binding `COUNTER`) through a stub,
//! and answers both: `{"group": total, "count": n}`. The output gate covers the call: the
//! group's new total is durable before the Counter sees the call. `GET /get`: `{"group": total}`.
//!
//! Build: `cargo build -p duro-example-counter-group --target wasm32-wasip2 --profile guest`.

use duro_sdk::{DurableObject, Error, Request, Response, Result, State, json};

struct CounterGroup {
    state: State,
}

impl DurableObject for CounterGroup {
    fn new(state: State) -> Self {
        CounterGroup { state }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        let storage = self.state.storage();
        match request.path() {
            "/increment" => {
                let name = request
                    .query()
                    .and_then(|q| q.strip_prefix("counter="))
                    .ok_or_else(|| Error::http(400, "give ?counter=NAME"))?
                    .to_string();
                let total = storage.get::<i64>("total")?.unwrap_or(0) + 1;
                storage.put("total", &total)?;
                let counters = self.state.namespace("COUNTER");
                let counter = counters.get(&counters.id_from_name(&name)?)?;
                let answer = counter.fetch(Request::new("POST", "http://do/increment"))?;
                let count: serde_json::Value = answer.json_body()?;
                Response::json(&json!({ "group": total, "count": count["count"] }))
            }
            "/get" => {
                Response::json(&json!({ "group": storage.get::<i64>("total")?.unwrap_or(0) }))
            }
            _ => Ok(Response::text(404, "Not found")),
        }
    }
}

duro_sdk::export!(CounterGroup);
