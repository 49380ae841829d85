//! RPC on stubs (`stub.method(...args)`): how a call rides the object's event path, and the one
//! value the host encodes itself.
//!
//! An RPC call is an [`Request`](super::Request) whose `rpc` names the method and
//! whose body holds the arguments (a JSON array in the RPC encoding). It goes where a `fetch`
//! goes — the callee's mailbox, one event at a time, under the output gate, in the access log and
//! the metrics — and only its last step differs: the actor runs the guest's `rpc` export instead
//! of `fetch`. Its answer is a [`Response`](super::Response) whose status says how the
//! method ended ([`RETURNED`] or [`THREW`]) and whose body is the encoded value.
//!
//! The encoding is JSON, with the values JSON lacks as objects tagged by `"$type"` (`undefined`,
//! `Date`, `BigInt`, `Map`, `Set`, `ArrayBuffer` and typed arrays, `Error`, `RegExp`, the
//! non-finite numbers); the SDKs write and read it, the host only passes bytes (README, "RPC
//! encoding").

/// The header of a `fetch` answer that a handler's exception made (a JS object's 500): the thrown
/// value, base64 of its encoding, so that a caller's `stub.fetch()` rejects with it as on
/// Cloudflare. Between objects it passes as any header; the ingress drops it, so a client sees
/// only the answer's body (`{"error": "TypeError: ..."}`).
pub const THROWN_HEADER: &str = "duro-thrown";

/// The status of an RPC answer whose method returned: the body is the value.
pub const RETURNED: u16 = 200;
/// The status of an RPC answer whose method threw: the body is the thrown value.
pub const THREW: u16 = 500;

/// The encoded `TypeError` with `message`, thrown to the caller by the host itself.
pub fn type_error(message: &str) -> Vec<u8> {
    let error = serde_json::json!({ "$type": "Error", "name": "TypeError", "message": message });
    error.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_type_error_is_a_tagged_error_value() {
        let value: serde_json::Value =
            serde_json::from_slice(&super::type_error("no \"x\"")).unwrap();
        assert_eq!(value["$type"], "Error");
        assert_eq!(value["name"], "TypeError");
        assert_eq!(value["message"], "no \"x\"");
    }
}
