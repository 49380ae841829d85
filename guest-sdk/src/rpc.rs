//! RPC: calling another object's methods ([`Stub::call`](crate::Stub::call)) and exposing this
//! class's ([`DurableObject::call`](crate::DurableObject::call)), across languages.
//!
//! Arguments and results are JSON values in duro's RPC encoding, which JavaScript's
//! `stub.method(...args)` speaks too: plain JSON stands for itself, and the values JSON lacks are
//! objects tagged by `"$type"` — `{"$type": "undefined"}`, `{"$type": "Date", "value": <ms>}`,
//! `{"$type": "BigInt", "value": "<digits>"}`, `{"$type": "Map", "value": [[k, v], ...]}`,
//! `{"$type": "Set", "value": [...]}`, `{"$type": "Uint8Array", "value": "<base64>"}` (and the
//! other typed arrays, `ArrayBuffer`), `{"$type": "Error", "name": ..., "message": ...}`.

use serde_json::{Value, json};

use crate::{Error, Result};

/// An `Error` value of the encoding (`{"$type": "Error", "name", "message"}`), as JavaScript's
/// `new TypeError(message)` crosses RPC.
///
/// ```
/// let error = duro_sdk::rpc::error("TypeError", "expected a name");
/// assert_eq!(error["$type"], "Error");
/// assert_eq!(error["name"], "TypeError");
/// ```
pub fn error(name: &str, message: &str) -> Value {
    json!({ "$type": "Error", "name": name, "message": message })
}

/// What an RPC method of a class that does not have it throws (Cloudflare's text).
///
/// ```
/// let thrown = duro_sdk::rpc::no_method("sayHello");
/// assert!(matches!(thrown, duro_sdk::Error::Thrown(_)));
/// assert!(thrown.to_string().contains("sayHello"));
/// ```
pub fn no_method(method: &str) -> Error {
    let message = format!("The RPC receiver does not implement the method \"{method}\".");
    Error::Thrown(error("TypeError", &message))
}

/// `name: message` of an encoded `Error`, else the thrown value's JSON.
pub(crate) fn describe(thrown: &Value) -> String {
    match (thrown["$type"].as_str(), thrown["name"].as_str()) {
        (Some("Error"), Some(name)) => {
            format!("{name}: {}", thrown["message"].as_str().unwrap_or_default())
        }
        _ => thrown.to_string(),
    }
}

/// Runs `method` of the object with encoded `args`: `Ok` the encoded value it returned, `Err` the
/// encoded value it threw (an [`Error::Thrown`] as it is, any other error as an `Error` value).
pub(crate) fn dispatch(
    args: &[u8],
    method: impl FnOnce(Vec<Value>) -> Result<Value>,
) -> std::result::Result<Vec<u8>, Vec<u8>> {
    let outcome = match serde_json::from_slice::<Vec<Value>>(args) {
        Ok(args) => method(args),
        Err(e) => Err(Error::Thrown(error(
            "TypeError",
            &format!("the RPC arguments are not a JSON array: {e}"),
        ))),
    };
    match outcome {
        Ok(value) => Ok(value.to_string().into_bytes()),
        Err(Error::Thrown(value)) => Err(value.to_string().into_bytes()),
        Err(other) => Err(error("Error", &other.to_string()).to_string().into_bytes()),
    }
}

/// The value an RPC answer stands for: what the method returned, or [`Error::Thrown`].
pub(crate) fn answer(outcome: std::result::Result<Vec<u8>, Vec<u8>>) -> Result<Value> {
    match outcome {
        Ok(value) => Ok(serde_json::from_slice(&value)?),
        Err(thrown) => Err(Error::Thrown(serde_json::from_slice(&thrown)?)),
    }
}
