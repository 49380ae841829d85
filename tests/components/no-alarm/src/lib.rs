//! no-alarm: a class built against the `object-core` world (fetch only, no `alarm` export), with
//! raw bindings. Its fetch tries to set an alarm and reports what storage said.

// The generated bindings flatten `list-options` into one many-argument import.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "object-core", path: "../../../wit" });

use duro::object::storage;

struct NoAlarm;

impl Guest for NoAlarm {
    fn fetch(_request: Request) -> Response {
        let body = match storage::set_alarm(0) {
            Ok(()) => "set".to_string(),
            Err(error) => format!("{error:?}"),
        };
        Response {
            status: 200,
            headers: vec![],
            body: body.into_bytes(),
        }
    }
}

export!(NoAlarm);
