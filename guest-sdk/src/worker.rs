//! Workers: the stateless front in front of the objects (Cloudflare's Worker). A worker gets
//! every ingress request and calls objects through the deploy config's bindings
//! ([`Namespace`](crate::Namespace)). It has no storage; the runtime may run several instances
//! of it, each with its own value of your type, and reuses them between requests.
//!
//! ```ignore
//! use duro_sdk::worker::Worker;
//! use duro_sdk::{Namespace, Request, Response, Result};
//!
//! struct Front;
//!
//! impl Worker for Front {
//!     fn new() -> Self { Front }
//!     fn fetch(&mut self, request: Request) -> Result<Response> {
//!         let counters = Namespace::new("COUNTER");
//!         let stub = counters.get(&counters.id_from_name("main")?)?;
//!         stub.fetch(Request::new("POST", "http://do/increment"))
//!     }
//! }
//!
//! duro_sdk::export_worker!(Front);
//! ```

use crate::{Error, Request, Response, Result};

/// The raw bindings of the `worker` world (its types are the object world's).
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod wit {
    wit_bindgen::generate!({
        world: "worker",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_duro_worker",
        default_bindings_module: "duro_sdk::worker::wit",
        with: {
            "duro:object/types@0.1.0": crate::wit::duro::object::types,
            "duro:object/namespaces@0.1.0": crate::wit::duro::object::namespaces,
            "duro:object/env@0.1.0": crate::wit::duro::object::env,
        },
    });
}

/// A worker: the stateless front in front of the objects.
pub trait Worker: Sized + 'static {
    /// Called once per instance, before its first request.
    fn new() -> Self;

    /// Handles one ingress request; `request.url()` is the full URL (`http://host/path?query`).
    /// A 101 response to an upgrade request that an object accepted (through
    /// [`Stub::fetch`](crate::Stub::fetch)) hands the WebSocket to the client.
    fn fetch(&mut self, request: Request) -> Result<Response>;
}

/// Exports a [`Worker`] type as the component's worker.
#[macro_export]
macro_rules! export_worker {
    ($ty:ty) => {
        const _: () = {
            struct DuroWorker;
            impl $crate::worker::wit::Guest for DuroWorker {
                fn fetch(request: $crate::wit::Request) -> $crate::wit::Response {
                    $crate::worker::__private::fetch::<$ty>(request)
                }
            }
            $crate::worker::wit::__export_duro_worker!(DuroWorker with_types_in $crate::worker::wit);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    use std::any::Any;
    use std::cell::RefCell;

    use super::Worker;
    use crate::wit;

    thread_local! {
        static WORKER: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    pub fn fetch<T: Worker>(request: wit::Request) -> wit::Response {
        let outcome = WORKER.with(|cell| {
            let mut slot = cell.borrow_mut();
            let worker = slot.get_or_insert_with(|| Box::new(T::new()));
            let worker = worker
                .downcast_mut::<T>()
                .expect("one Worker type per component");
            worker.fetch(request.into())
        });
        super::answer(outcome).into()
    }
}

/// The response for a handler's outcome: its response, or its error as JSON (a server error is
/// also printed to stderr).
pub(crate) fn answer(outcome: Result<Response>) -> Response {
    let (status, message) = match outcome {
        Ok(response) => return response,
        Err(Error::Http { status, message }) => (status, message),
        Err(error) => (500, error.to_string()),
    };
    if status >= 500 {
        // Goes to the runtime's log, tagged with the class and the object.
        eprintln!("fetch failed ({status}): {message}");
    }
    Response::error(status, &message)
}
