//! Workers: the stateless front in front of the objects (Cloudflare's Worker). A worker gets
//! every ingress request and calls objects through the deploy config's bindings
//! ([`Namespace`](crate::Namespace)). It has no storage; the runtime may run several instances
//! of it, each with its own value of your type, and reuses them between requests.
//!
//! ```no_run
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
///
/// ```no_run
/// use duro_sdk::worker::Worker;
/// use duro_sdk::{Namespace, Request, Response, Result};
///
/// struct Router;
///
/// impl Worker for Router {
///     fn new() -> Self { Router }
///     fn fetch(&mut self, request: Request) -> Result<Response> {
///         // /api/counters/{name}/increment -> the counter called {name}
///         let parts: Vec<&str> = request.path().split('/').collect();
///         match parts.as_slice() {
///             ["", "api", "counters", name, "increment"] => {
///                 let counters = Namespace::new("COUNTER");
///                 let stub = counters.get(&counters.id_from_name(name)?)?;
///                 stub.fetch(request.with_url("http://do/increment"))
///             }
///             _ => Ok(Response::text(404, "Not found")),
///         }
///     }
/// }
///
/// duro_sdk::export_worker!(Router);
/// ```
pub trait Worker: Sized + 'static {
    /// Called once per instance, before its first request.
    ///
    /// ```no_run
    /// # use duro_sdk::{Request, Response, Result, worker::Worker};
    /// struct Front { served: u64 } // per instance; instances are reused between requests
    /// impl Worker for Front {
    ///     fn new() -> Self { Front { served: 0 } }
    ///     fn fetch(&mut self, _request: Request) -> Result<Response> {
    ///         self.served += 1;
    ///         Ok(Response::text(200, "ok"))
    ///     }
    /// }
    /// ```
    fn new() -> Self;

    /// Handles one ingress request; `request.url()` is the full URL (`http://host/path?query`).
    /// A 101 response to an upgrade request that an object accepted (through
    /// [`Stub::fetch`](crate::Stub::fetch)) hands the WebSocket to the client.
    ///
    /// ```no_run
    /// # use duro_sdk::{Namespace, Request, Response, Result, worker::Worker};
    /// # struct Front;
    /// impl Worker for Front {
    ///     # fn new() -> Self { Front }
    ///     fn fetch(&mut self, request: Request) -> Result<Response> {
    ///         // A WebSocket upgrade forwarded to a room: the room accepts it and answers 101.
    ///         let rooms = Namespace::new("ROOM");
    ///         let room = rooms.get(&rooms.id_from_name("lobby")?)?;
    ///         room.fetch(request.with_url("http://do/websocket"))
    ///     }
    /// }
    /// ```
    fn fetch(&mut self, request: Request) -> Result<Response>;
}

/// Exports a [`Worker`] type as the component's worker.
///
/// ```no_run
/// struct Hello;
/// impl duro_sdk::worker::Worker for Hello {
///     fn new() -> Self { Hello }
///     fn fetch(&mut self, _r: duro_sdk::Request) -> duro_sdk::Result<duro_sdk::Response> {
///         Ok(duro_sdk::Response::text(200, "hello"))
///     }
/// }
/// duro_sdk::export_worker!(Hello); // one worker per component
/// ```
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
