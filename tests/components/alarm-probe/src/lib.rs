//! alarm-probe: a test class for alarms. Every `alarm()` invocation is appended to the "log" key
//! (retry count, is-retry, when it ran), so tests can read what fired and when.
//!
//! - `POST /set?in=MS` or `/set?at=EPOCH_MS`: set the alarm; `{"at": ms}`
//! - `GET /get`: `{"alarm": ms | null}`; `POST /delete`: delete it
//! - `POST /fail?times=N`: the next N invocations return an error (their log entry still commits)
//! - `POST /reschedule?every=MS&count=N`: each invocation sets the next alarm MS later, N times
//! - `POST /slow?ms=N`: the next invocations spin N ms before finishing
//! - `GET /log`: `{"invocations": [{"retryCount", "isRetry", "firedAtMs", "scheduledAtMs"}]}`

use duro_sdk::{AlarmInfo, DurableObject, Error, Request, Response, Result, State, json, now_ms};
use serde_json::Value;

struct AlarmProbe {
    state: State,
}

fn param(request: &Request, name: &str) -> Option<i64> {
    request.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.parse().ok())?
    })
}

impl DurableObject for AlarmProbe {
    fn new(state: State) -> Self {
        AlarmProbe { state }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        let storage = self.state.storage();
        match request.path() {
            "/set" => {
                let at = match (param(&request, "in"), param(&request, "at")) {
                    (Some(delay), _) => now_ms() + delay,
                    (None, Some(at)) => at,
                    _ => return Err(Error::http(400, "give ?in= or ?at=")),
                };
                storage.set_alarm(at)?;
                storage.put("scheduled", &at)?;
                Response::json(&json!({ "at": at }))
            }
            "/get" => Response::json(&json!({ "alarm": storage.get_alarm()? })),
            "/delete" => {
                storage.delete_alarm()?;
                Response::json(&json!({}))
            }
            "/fail" => {
                storage.put("fail-remaining", &param(&request, "times").unwrap_or(1))?;
                Response::json(&json!({}))
            }
            "/reschedule" => {
                let every = param(&request, "every").unwrap_or(100);
                let count = param(&request, "count").unwrap_or(1);
                storage.put("reschedule", &json!({ "every": every, "left": count }))?;
                let at = now_ms() + every;
                storage.set_alarm(at)?;
                storage.put("scheduled", &at)?;
                Response::json(&json!({ "at": at }))
            }
            "/slow" => {
                storage.put("slow-ms", &param(&request, "ms").unwrap_or(0))?;
                Response::json(&json!({}))
            }
            "/log" => {
                let log: Vec<Value> = storage.get("log")?.unwrap_or_default();
                Response::json(&json!({ "invocations": log }))
            }
            _ => Ok(Response::text(404, "not found")),
        }
    }

    fn alarm(&mut self, info: AlarmInfo) -> Result<()> {
        let storage = self.state.storage();
        let mut log: Vec<Value> = storage.get("log")?.unwrap_or_default();
        log.push(json!({
            "retryCount": info.retry_count,
            "isRetry": info.is_retry,
            "firedAtMs": now_ms(),
            "scheduledAtMs": storage.get::<i64>("scheduled")?,
            "alarmDuringHandler": storage.get_alarm()?,
        }));
        storage.put("log", &log)?;
        let slow_ms = storage.get::<i64>("slow-ms")?.unwrap_or(0);
        let until = now_ms() + slow_ms;
        while now_ms() < until {
            std::hint::spin_loop();
        }
        let remaining = storage.get::<i64>("fail-remaining")?.unwrap_or(0);
        if remaining > 0 {
            storage.put("fail-remaining", &(remaining - 1))?;
            return Err(Error::http(500, "failing on purpose"));
        }
        if let Some(mut plan) = storage.get::<Value>("reschedule")? {
            let left = plan["left"].as_i64().unwrap_or(0);
            if left > 0 {
                plan["left"] = json!(left - 1);
                let at = now_ms() + plan["every"].as_i64().unwrap_or(100);
                storage.put("reschedule", &plan)?;
                storage.set_alarm(at)?;
                storage.put("scheduled", &at)?;
            }
        }
        Ok(())
    }
}

duro_sdk::export!(AlarmProbe);
