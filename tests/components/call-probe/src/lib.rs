//! call-probe: a test class for calls between objects (bindings set by the test).
//!
//! - `/call?b=BINDING&n=NAME&p=PATH`: POSTs to PATH on object NAME of BINDING; answers
//!   `{"status", "body"}` of the callee, or `{"error": "<kind>: ..."}` with 502
//! - `/hop?route=B1:n1,B2:n2,...`: calls the first hop with the rest of the route (`/hop` of a
//!   call-probe); the last one answers `{"depth": n}`. A route back to an earlier object is a
//!   cycle
//! - `/calls?times=N&b=..&n=..&p=..`: makes the same call N times in one event (`%3F` and `%26`
//!   in PATH stand for `?` and `&`); answers like `/call`, for the last one
//! - `/write-and-call?kib=N&b=..&n=..&p=..`: writes N KiB under "blob", then calls
//! - `/fetch?url=URL`: GETs URL (outgoing HTTP); answers `{"status", "body"}`, or 502
//!   `{"error": "fetch: ..."}`
//! - `/write-and-fetch?kib=N&url=URL`: writes N KiB under "blob", then fetches
//! - `/blob`: `{"bytes": N}`, the length of "blob" (0 when absent)
//! - `/events`: how many events this instance ran (memory only)
//! - `/trap`: panics
//! - `/upgrade?b=..&n=..&p=..`: forwards this (upgrade) request to the callee, answers its answer
//! - `/rpc?b=..&n=..&m=METHOD`: an RPC call of METHOD with the request body's JSON array as the
//!   arguments; answers `{"returned": value}` or `{"thrown": value}`
//!
//! RPC methods (`DurableObject::call`): `add(a, b)`, `echo(...args)` (the arguments as a list),
//! `whoAmI()` (`{"id", "name"}`), `fail()` (throws a TypeError), `relay(binding, name, method,
//! ...args)` (calls that method of that object and returns its value).

use duro_sdk::{DurableObject, Error, Namespace, Request, Response, Result, State, json};

struct CallProbe {
    state: State,
    events: u64,
}

fn param(request: &Request, name: &str) -> String {
    request
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
        .unwrap_or_default()
}

/// Calls `path` on object `name` of `binding` with `request` as the template.
fn call(binding: &str, name: &str, path: &str, template: Option<&Request>) -> Result<Response> {
    let namespace = Namespace::new(binding);
    let stub = namespace.get(&namespace.id_from_name(name)?)?;
    let url = format!("http://do{path}");
    let request = match template {
        Some(original) => original.clone().with_url(&url),
        None => Request::new("POST", &url),
    };
    stub.fetch(request)
}

fn report(outcome: Result<Response>) -> Result<Response> {
    match outcome {
        Err(Error::Fetch(reason)) => Ok(Response::error(502, &Error::Fetch(reason).to_string())),
        Ok(response) => Response::json(&json!({
            "status": response.status,
            "body": String::from_utf8_lossy(&response.body),
        })),
        Err(Error::Call(error)) => Ok(Response::error(502, &Error::Call(error).to_string())),
        Err(other) => Err(other),
    }
}

impl DurableObject for CallProbe {
    fn new(state: State) -> Self {
        CallProbe { state, events: 0 }
    }

    fn fetch(&mut self, request: Request) -> Result<Response> {
        self.events += 1;
        match request.path() {
            "/call" => report(call(
                &param(&request, "b"),
                &param(&request, "n"),
                &param(&request, "p"),
                None,
            )),
            "/hop" => {
                let route = param(&request, "route");
                let mut hops = route.split(',').filter(|h| !h.is_empty());
                let Some(next) = hops.next() else {
                    return Response::json(&json!({ "depth": 0 }));
                };
                let (binding, name) = next.split_once(':').unwrap_or((next, ""));
                let rest: Vec<&str> = hops.collect();
                let path = format!("/hop?route={}", rest.join(","));
                report(call(binding, name, &path, None))
            }
            "/calls" => {
                let times: usize = param(&request, "times").parse().unwrap_or(1);
                let path = param(&request, "p").replace("%3F", "?").replace("%26", "&");
                let (binding, name) = (param(&request, "b"), param(&request, "n"));
                let mut last = call(&binding, &name, &path, None);
                for _ in 1..times {
                    last = call(&binding, &name, &path, None);
                }
                report(last)
            }
            "/write-and-call" => {
                let kib: usize = param(&request, "kib").parse().unwrap_or(1);
                self.state
                    .storage()
                    .put_bytes("blob", &vec![7u8; kib * 1024])?;
                report(call(
                    &param(&request, "b"),
                    &param(&request, "n"),
                    &param(&request, "p"),
                    None,
                ))
            }
            "/fetch" => report(duro_sdk::fetch(Request::new(
                "GET",
                &param(&request, "url"),
            ))),
            "/write-and-fetch" => {
                let kib: usize = param(&request, "kib").parse().unwrap_or(1);
                self.state
                    .storage()
                    .put_bytes("blob", &vec![7u8; kib * 1024])?;
                report(duro_sdk::fetch(Request::new(
                    "GET",
                    &param(&request, "url"),
                )))
            }
            "/upgrade" => call(
                &param(&request, "b"),
                &param(&request, "n"),
                &param(&request, "p"),
                Some(&request),
            ),
            "/blob" => {
                let blob = self.state.storage().get_bytes("blob")?.unwrap_or_default();
                Response::json(&json!({ "bytes": blob.len() }))
            }
            "/events" => Response::json(&json!({ "events": self.events })),
            "/trap" => panic!("trap requested"),
            "/rpc" => {
                let namespace = Namespace::new(&param(&request, "b"));
                let stub = namespace.get(&namespace.id_from_name(&param(&request, "n"))?)?;
                let args: Vec<duro_sdk::serde_json::Value> = request.json()?;
                match stub.call(&param(&request, "m"), &args) {
                    Ok(value) => Response::json(&json!({ "returned": value })),
                    Err(Error::Thrown(value)) => Response::json(&json!({ "thrown": value })),
                    Err(other) => Err(other),
                }
            }
            _ => Ok(Response::text(404, "Not found")),
        }
    }

    fn call(
        &mut self,
        method: &str,
        args: Vec<duro_sdk::serde_json::Value>,
    ) -> Result<duro_sdk::serde_json::Value> {
        let number = |i: usize| args.get(i).and_then(|v| v.as_i64()).unwrap_or(0);
        match method {
            "add" => Ok(json!(number(0) + number(1))),
            "echo" => Ok(json!(args)),
            "whoAmI" => Ok(json!({ "id": self.state.id(), "name": self.state.name() })),
            "fail" => Err(Error::Thrown(duro_sdk::rpc::error(
                "TypeError",
                "failed on purpose",
            ))),
            "relay" => {
                let text = |i: usize| args.get(i).and_then(|v| v.as_str()).unwrap_or_default();
                let namespace = Namespace::new(text(0));
                let stub = namespace.get(&namespace.id_from_name(text(1))?)?;
                stub.call(text(2), args.get(3..).unwrap_or_default())
            }
            _ => Err(duro_sdk::rpc::no_method(method)),
        }
    }
}

duro_sdk::export!(CallProbe);
