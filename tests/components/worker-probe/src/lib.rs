//! worker-probe: a test worker exposing the `namespaces` API over HTTP.
//!
//! - `GET /id/name/B/NAME`, `POST /id/unique/B`, `GET /id/string/B/ID`: `{"id"}`, or 400
//!   `{"error"}` with the call error
//! - `ANY /to/B/NAME/PATH...`: forwards the request to PATH of object NAME of binding B
//!   (`{"error"}` with 502 when the call fails)
//! - `GET /fetch?url=URL`: GETs URL (outgoing HTTP) and answers its answer (`{"error"}` with 502
//!   when the fetch fails)
//! - `GET /version`: the `VERSION` this worker was built with

use duro_sdk::worker::Worker;
use duro_sdk::{Error, Namespace, Request, Response, Result, json};

/// This build's version marker: `probe-version-1`, or `-2` in a copy whose bytes the upgrade test
/// patched.
static VERSION: &str = "probe-version-1";

struct Probe;

fn id_answer(outcome: Result<duro_sdk::ObjectId>) -> Result<Response> {
    match outcome {
        Ok(id) => Response::json(&json!({ "id": id.as_str() })),
        Err(error) => Ok(Response::error(400, &error.to_string())),
    }
}

impl Worker for Probe {
    fn new() -> Self {
        Probe
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        let path = request.path().to_string();
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match parts.as_slice() {
            ["id", "name", b, name] => id_answer(Namespace::new(b).id_from_name(name)),
            ["id", "unique", b] => id_answer(Namespace::new(b).new_unique_id()),
            ["id", "string", b, id] => id_answer(Namespace::new(b).id_from_string(id)),
            ["to", b, name, rest @ ..] => {
                let namespace = Namespace::new(b);
                let stub = namespace.get(&namespace.id_from_name(name)?)?;
                let query = request.query().map(|q| format!("?{q}")).unwrap_or_default();
                let url = format!("http://do/{}{query}", rest.join("/"));
                match stub.fetch(request.with_url(&url)) {
                    Ok(response) => Ok(response),
                    Err(Error::Call(error)) => {
                        Ok(Response::error(502, &Error::Call(error).to_string()))
                    }
                    Err(other) => Err(other),
                }
            }
            ["fetch"] => {
                let url = request
                    .query()
                    .unwrap_or_default()
                    .strip_prefix("url=")
                    .unwrap_or_default()
                    .to_string();
                match duro_sdk::fetch(Request::new("GET", &url)) {
                    Ok(response) => Ok(response),
                    Err(error) => Ok(Response::error(502, &error.to_string())),
                }
            }
            ["version"] => Response::json(&json!({ "version": std::hint::black_box(VERSION) })),
            _ => Ok(Response::text(404, "404 Not Found")),
        }
    }
}

duro_sdk::export_worker!(Probe);
