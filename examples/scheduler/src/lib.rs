//! Scheduler: the alarm pattern of Cloudflare's example. A request schedules work N ms ahead; the alarm expires
//! the data and schedules itself again.
//!
//! - `POST /schedule?ms=N` (default 10000): stores "expired-data", sets the alarm N ms ahead and
//!   returns `{"scheduled": true}`
//! - `GET /status`: `{"alarm": ms | null, "expiredData": ..., "runs": n}`
//! - `alarm()`: deletes "expired-data", counts the run, and reschedules N ms later
//!
//! Build: `cargo build -p duro-example-scheduler --target wasm32-wasip2 --profile guest`.

use duro_sdk::{AlarmInfo, DurableObject, Request, Response, Result, State, json, now_ms};

struct Scheduler {
    state: State,
}

impl DurableObject for Scheduler {
    fn new(state: State) -> Self {
        Scheduler { state }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        let storage = self.state.storage();
        match request.path() {
            "/schedule" => {
                let ms = request
                    .query()
                    .and_then(|q| q.strip_prefix("ms="))
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(10_000);
                storage.put("interval-ms", &ms)?;
                storage.put("expired-data", &json!({ "createdAtMs": now_ms() }))?;
                storage.set_alarm(now_ms() + ms)?;
                Response::json(&json!({ "scheduled": true }))
            }
            "/status" => Response::json(&json!({
                "alarm": storage.get_alarm()?,
                "expiredData": storage.get::<serde_json::Value>("expired-data")?,
                "runs": storage.get::<u64>("runs")?.unwrap_or(0),
            })),
            _ => Ok(Response::text(404, "Not found")),
        }
    }

    fn alarm(&mut self, _info: AlarmInfo) -> Result<()> {
        let storage = self.state.storage();
        storage.delete("expired-data")?;
        let runs = storage.get::<u64>("runs")?.unwrap_or(0) + 1;
        storage.put("runs", &runs)?;
        let interval = storage.get::<i64>("interval-ms")?.unwrap_or(10_000);
        storage.set_alarm(now_ms() + interval)?;
        Ok(())
    }
}

duro_sdk::export!(Scheduler);
