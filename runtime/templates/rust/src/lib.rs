//! {class}: a Durable Object class for duro. `duro dev` builds it, serves it and reloads it when
//! this file changes.
//!
//! - `POST /objects/{class}/{name}/increment`: adds one and answers `{"count": n}`
//! - `GET /objects/{class}/{name}/get`: answers `{"count": n}`
//! - anything else: 404

use duro_sdk::{DurableObject, Request, Response, Result, State};
use serde::{Deserialize, Serialize};

/// What one object keeps in storage, under the key "state" (stored as JSON).
#[derive(Default, Serialize, Deserialize)]
struct Tally {
    count: i64,
}

struct {class} {
    state: State,
}

impl DurableObject for {class} {
    fn new(state: State) -> Self {
        Self { state }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        let storage = self.state.storage();
        let mut tally: Tally = storage.get("state")?.unwrap_or_default();
        match (request.method(), request.path()) {
            ("POST", "/increment") => {
                tally.count += 1;
                storage.put("state", &tally)?;
                Response::json(&tally)
            }
            ("GET", "/get") => Response::json(&tally),
            _ => Ok(Response::text(404, "Not found")),
        }
    }
}

duro_sdk::export!({class});
