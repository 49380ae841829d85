//! duro-sdk: write duro Durable Object classes in Rust.
//!
//! ```no_run
//! use duro_sdk::{DurableObject, Request, Response, Result, State, json};
//!
//! struct Counter { state: State }
//!
//! impl DurableObject for Counter {
//!     fn new(state: State) -> Self { Counter { state } }
//!     fn fetch(&mut self, request: Request) -> Result<Response> {
//!         let count = self.state.storage().get::<i64>("count")?.unwrap_or(0) + 1;
//!         self.state.storage().put("count", &count)?;
//!         Response::json(&json!({ "count": count }))
//!     }
//! }
//!
//! duro_sdk::export!(Counter);
//! ```
//!
//! One value of your type lives per object while the object is live (`new` runs on its first
//! event); keep in-memory state in it. Storage values are JSON (serde_json), so objects written in
//! other languages read the same data. `fetch` returning `Err` answers with a JSON error and
//! status 500 (or the status of an [`Error::Http`]); every write of that event is still
//! committed unless the guest traps (panics).
#![deny(missing_docs)]

mod fetch;
mod http;
mod namespace;
pub mod rpc;
mod sql;
mod storage;
mod websocket;
pub mod worker;

pub use fetch::fetch;
pub use http::{Request, Response};
pub use namespace::{Namespace, ObjectId, Stub};
/// The serde the SDK stores values with. Derive with it through the SDK alone:
///
/// ```
/// #[derive(duro_sdk::serde::Serialize, duro_sdk::serde::Deserialize)]
/// #[serde(crate = "duro_sdk::serde")]
/// struct Tally {
///     count: i64,
/// }
/// let response = duro_sdk::Response::json(&Tally { count: 1 })?;
/// assert_eq!(response.body, br#"{"count":1}"#);
/// # Ok::<(), duro_sdk::Error>(())
/// ```
///
/// or depend on `serde` (with its `derive` feature) yourself, as `duro init`'s project does, and
/// write `#[derive(Serialize, Deserialize)]`.
pub use serde;
/// The JSON library of storage values and of [`Request::json`]; [`json!`] is re-exported too.
///
/// ```
/// let value: duro_sdk::serde_json::Value = duro_sdk::json!({ "count": 1 });
/// assert_eq!(value["count"], 1);
/// ```
pub use serde_json;
pub use serde_json::json;
pub use sql::{Cursor, Sql, SqlValue};
pub use storage::{ListOptions, Storage, StorageError};
pub use websocket::{Message, WebSocket, WebSockets, WebsocketError};
/// Why a call to another object ([`Stub::fetch`]) failed, a variant per thing a caller may do
/// about it: an unknown binding or a bad id (a bug), overloaded (retry later), a timeout, a cycle
/// (this call would wait on itself), or the callee failed (it trapped, or its class is gone).
///
/// ```no_run
/// use duro_sdk::{CallError, Error, Namespace, Request};
/// let limiter = Namespace::new("LIMITER");
/// let stub = limiter.get(&limiter.id_from_name("global")?)?;
/// let allowed = match stub.fetch(Request::new("POST", "http://do/take")) {
///     Ok(response) => response.status == 200,
///     // The limiter is busy or down: let the request through rather than fail it.
///     Err(Error::Call(CallError::Overloaded(_) | CallError::Timeout(_) | CallError::Failed(_))) => true,
///     Err(other) => return Err(other),
/// };
/// # Ok::<(), duro_sdk::Error>(())
/// ```
pub use wit::duro::object::namespaces::CallError;

/// The raw bindings generated from `wit/`, for what the SDK does not wrap.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod wit {
    wit_bindgen::generate!({
        world: "durable-object",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_duro_world",
        default_bindings_module: "duro_sdk::wit",
    });
}

/// The deploy config's `vars` and secrets (Cloudflare's `env.NAME` values), in objects and
/// workers alike.
///
/// ```no_run
/// let greeting = duro_sdk::env::get("GREETING").unwrap_or_else(|| "hello".to_string());
/// ```
pub mod env {
    /// The value of `name`, if the deploy config defines it (as a var or a secret).
    ///
    /// ```no_run
    /// let limit: u32 = duro_sdk::env::get("LIMIT").and_then(|v| v.parse().ok()).unwrap_or(100);
    /// ```
    pub fn get(name: &str) -> Option<String> {
        crate::wit::duro::object::env::get(name)
    }

    /// Every var and secret with its value.
    ///
    /// ```no_run
    /// for (name, _value) in duro_sdk::env::all() {
    ///     println!("{name} is set");
    /// }
    /// ```
    pub fn all() -> Vec<(String, String)> {
        crate::wit::duro::object::env::all()
    }
}

/// What can go wrong in a handler.
///
/// ```
/// use duro_sdk::{Error, Request, Response, Result};
/// fn fetch(request: Request) -> Result<Response> {
///     let body: serde_json::Value = request.json()?; // not JSON: 400
///     let name = body["name"].as_str().ok_or_else(|| Error::http(422, "name is missing"))?;
///     Ok(Response::text(200, name))
/// }
/// let answer = fetch(Request::new("POST", "http://do/").with_body(b"{}".to_vec()));
/// assert!(matches!(answer, Err(Error::Http { status: 422, .. })));
/// ```
#[derive(Debug)]
pub enum Error {
    /// A storage call failed (a limit, a bad argument).
    Storage(StorageError),
    /// A WebSocket call failed.
    WebSocket(WebsocketError),
    /// A call to another object failed.
    Call(CallError),
    /// An outgoing [`fetch`] failed: the text says why.
    Fetch(String),
    /// An SQL call failed: SQLite's message, or why duro refused the statement.
    Sql(String),
    /// A value could not be encoded or decoded as JSON.
    Json(serde_json::Error),
    /// An RPC method threw this value (in the [RPC encoding](rpc): an error is
    /// `{"$type": "Error", "name": ..., "message": ...}`). Returned by [`Stub::call`] when the
    /// callee threw; returned by [`DurableObject::call`], it is what the caller's call throws.
    Thrown(serde_json::Value),
    /// Answer with this status and message.
    Http {
        /// The HTTP status to answer with.
        status: u16,
        /// The message put in `{"error": ...}`.
        message: String,
    },
}

impl Error {
    /// An error answered with `status` and `{"error": message}`.
    ///
    /// ```
    /// let error = duro_sdk::Error::http(403, "not yours");
    /// assert_eq!(error.to_string(), "not yours");
    /// ```
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Self::Http {
            status,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "storage: {}", storage::describe(e)),
            Self::WebSocket(e) => write!(f, "websocket: {}", websocket::describe(e)),
            Self::Call(e) => write!(f, "call: {}", namespace::describe(e)),
            Self::Fetch(reason) => write!(f, "fetch: {reason}"),
            Self::Sql(reason) => f.write_str(reason),
            Self::Json(e) => write!(f, "json: {e}"),
            Self::Thrown(value) => f.write_str(&rpc::describe(value)),
            Self::Http { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl From<StorageError> for Error {
    fn from(error: StorageError) -> Self {
        Self::Storage(error)
    }
}

impl From<WebsocketError> for Error {
    fn from(error: WebsocketError) -> Self {
        Self::WebSocket(error)
    }
}

impl From<CallError> for Error {
    fn from(error: CallError) -> Self {
        Self::Call(error)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::Json(error)
    }
}

/// The result of SDK calls and handlers.
///
/// ```
/// fn parse_count(text: &str) -> duro_sdk::Result<i64> {
///     text.parse().map_err(|_| duro_sdk::Error::http(400, "not a number"))
/// }
/// assert_eq!(parse_count("7").unwrap(), 7);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// This object: who it is and its storage.
///
/// ```no_run
/// # use duro_sdk::{DurableObject, Request, Response, Result, State};
/// struct Room { state: State }
/// impl DurableObject for Room {
///     fn new(state: State) -> Self { Room { state } }
///     fn fetch(&mut self, _request: Request) -> Result<Response> {
///         Ok(Response::text(200, &format!("room {:?}", self.state.name())))
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    _private: (),
}

impl State {
    /// The object's id: 64 lowercase hex characters.
    ///
    /// ```no_run
    /// let state = duro_sdk::State::default();
    /// let me = state.id(); // the same id the HTTP routes and `Namespace::id_from_name` give
    /// ```
    pub fn id(&self) -> String {
        wit::duro::object::state::id()
    }

    /// The name the object was addressed by, if it was.
    ///
    /// ```no_run
    /// let state = duro_sdk::State::default();
    /// let title = state.name().unwrap_or_else(|| "an unnamed room".to_string());
    /// ```
    pub fn name(&self) -> Option<String> {
        wit::duro::object::state::name()
    }

    /// The object's class.
    ///
    /// ```no_run
    /// let state = duro_sdk::State::default();
    /// println!("{} {}", state.class_name(), state.id());
    /// ```
    pub fn class_name(&self) -> String {
        wit::duro::object::state::class_name()
    }

    /// The object's transactional storage.
    ///
    /// ```no_run
    /// let state = duro_sdk::State::default();
    /// state.storage().put("seen", &true)?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn storage(&self) -> Storage {
        Storage::new()
    }

    /// The object's WebSockets.
    ///
    /// ```no_run
    /// let state = duro_sdk::State::default();
    /// for ws in state.websockets().get(None) {
    ///     ws.send_text("bye")?;
    /// }
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn websockets(&self) -> WebSockets {
        WebSockets::default()
    }

    /// The objects of a binding of the deploy config (`"COUNTER"`), to call them.
    ///
    /// ```no_run
    /// let state = duro_sdk::State::default();
    /// let limiter = state.namespace("LIMITER");
    /// let stub = limiter.get(&limiter.id_from_name("global")?)?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn namespace(&self, binding: &str) -> Namespace {
        Namespace::new(binding)
    }
}

/// What an `alarm` invocation is told.
///
/// ```
/// let first = duro_sdk::AlarmInfo { retry_count: 0, is_retry: false };
/// assert!(!first.is_retry);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmInfo {
    /// 0 on the first attempt, then 1, 2, ... for retries.
    ///
    /// ```
    /// let third = duro_sdk::AlarmInfo { retry_count: 2, is_retry: true };
    /// assert!(third.retry_count < 6);
    /// ```
    pub retry_count: u32,
    /// Whether this invocation is a retry of a failed one.
    ///
    /// ```
    /// let info = duro_sdk::AlarmInfo { retry_count: 1, is_retry: true };
    /// assert_eq!(info.is_retry, info.retry_count > 0);
    /// ```
    pub is_retry: bool,
}

/// Milliseconds since the Unix epoch (the host's wall clock), the unit of alarms.
///
/// ```
/// let in_a_minute = duro_sdk::now_ms() + 60_000;
/// assert!(in_a_minute > 1_700_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A Durable Object class.
///
/// ```no_run
/// use duro_sdk::{AlarmInfo, DurableObject, Request, Response, Result, State};
///
/// struct Reminder { state: State }
///
/// impl DurableObject for Reminder {
///     fn new(state: State) -> Self { Reminder { state } }
///
///     fn fetch(&mut self, _request: Request) -> Result<Response> {
///         self.state.storage().set_alarm(duro_sdk::now_ms() + 5_000)?;
///         Ok(Response::text(202, "reminding you in 5 s"))
///     }
///
///     fn alarm(&mut self, info: AlarmInfo) -> Result<()> {
///         let fired = self.state.storage().get::<u32>("fired")?.unwrap_or(0);
///         self.state.storage().put("fired", &(fired + 1))
///     }
/// }
///
/// duro_sdk::export!(Reminder);
/// ```
pub trait DurableObject: Sized + 'static {
    /// Called on the object's first event after it becomes live.
    ///
    /// ```no_run
    /// # use duro_sdk::{DurableObject, Request, Response, Result, State};
    /// struct Cache { state: State, hits: u64 } // `hits` lives as long as the instance
    /// impl DurableObject for Cache {
    ///     fn new(state: State) -> Self { Cache { state, hits: 0 } }
    ///     fn fetch(&mut self, _request: Request) -> Result<Response> {
    ///         self.hits += 1;
    ///         Ok(Response::text(200, &self.hits.to_string()))
    ///     }
    /// }
    /// ```
    fn new(state: State) -> Self;

    /// Handles a request addressed to this object.
    ///
    /// ```no_run
    /// # use duro_sdk::{DurableObject, Request, Response, Result, State};
    /// # struct Counter { state: State }
    /// impl DurableObject for Counter {
    ///     # fn new(state: State) -> Self { Counter { state } }
    ///     fn fetch(&mut self, request: Request) -> Result<Response> {
    ///         match (request.method(), request.path()) {
    ///             ("POST", "/increment") => {
    ///                 let count = self.state.storage().get::<i64>("count")?.unwrap_or(0) + 1;
    ///                 self.state.storage().put("count", &count)?;
    ///                 Response::json(&duro_sdk::json!({ "count": count }))
    ///             }
    ///             _ => Ok(Response::text(404, "Not found")),
    ///         }
    ///     }
    /// }
    /// ```
    fn fetch(&mut self, request: Request) -> Result<Response>;

    /// Runs when the object's alarm fires (set with [`Storage::set_alarm`]). The alarm is
    /// already cleared when this runs; set a new one to reschedule. Returning `Err` (or
    /// panicking) means "retry": the runtime retries with exponential backoff (2 s, 4 s, ...,
    /// at most 6 retries). The default does nothing.
    ///
    /// ```no_run
    /// # use duro_sdk::{AlarmInfo, DurableObject, Request, Response, Result, State};
    /// # struct Poller { state: State }
    /// impl DurableObject for Poller {
    ///     # fn new(state: State) -> Self { Poller { state } }
    ///     # fn fetch(&mut self, _r: Request) -> Result<Response> { Ok(Response::new(204)) }
    ///     fn alarm(&mut self, info: AlarmInfo) -> Result<()> {
    ///         if info.is_retry {
    ///             eprintln!("retry {}", info.retry_count);
    ///         }
    ///         // Every minute, for ever.
    ///         self.state.storage().set_alarm(duro_sdk::now_ms() + 60_000)
    ///     }
    /// }
    /// ```
    fn alarm(&mut self, info: AlarmInfo) -> Result<()> {
        let _ = info;
        Ok(())
    }

    /// A message arrived on one of this object's WebSockets. The default does nothing.
    ///
    /// ```no_run
    /// # use duro_sdk::{DurableObject, Message, Request, Response, Result, State, WebSocket};
    /// # struct Chat { state: State }
    /// impl DurableObject for Chat {
    ///     # fn new(state: State) -> Self { Chat { state } }
    ///     # fn fetch(&mut self, _r: Request) -> Result<Response> { Ok(Response::new(204)) }
    ///     fn websocket_message(&mut self, _from: WebSocket, message: Message) -> Result<()> {
    ///         for ws in self.state.websockets().get(None) {
    ///             ws.send(&message)?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn websocket_message(&mut self, ws: WebSocket, message: Message) -> Result<()> {
        let _ = (ws, message);
        Ok(())
    }

    /// An RPC call of one of this class's methods (JavaScript's `stub.method(...args)`, Rust's
    /// [`Stub::call`]): `args` and the result are JSON values in the [RPC encoding](rpc). An
    /// `Err` is thrown to the caller ([`Error::Thrown`] as it is, any other error as an `Error`
    /// with its text). The default has no methods.
    ///
    /// ```no_run
    /// # use duro_sdk::{DurableObject, Request, Response, Result, State, json};
    /// # struct Greeter { state: State }
    /// impl DurableObject for Greeter {
    ///     # fn new(state: State) -> Self { Greeter { state } }
    ///     # fn fetch(&mut self, _r: Request) -> Result<Response> { Ok(Response::new(204)) }
    ///     fn call(&mut self, method: &str, args: Vec<duro_sdk::serde_json::Value>) -> Result<duro_sdk::serde_json::Value> {
    ///         match method {
    ///             "sayHello" => Ok(json!(format!("Hello, {}!", args[0].as_str().unwrap_or("you")))),
    ///             _ => Err(duro_sdk::rpc::no_method(method)),
    ///         }
    ///     }
    /// }
    /// ```
    fn call(&mut self, method: &str, args: Vec<serde_json::Value>) -> Result<serde_json::Value> {
        let _ = args;
        Err(rpc::no_method(method))
    }

    /// A WebSocket closed (`code` 1005/1006 when no close frame came). The default does nothing.
    ///
    /// ```no_run
    /// # use duro_sdk::{DurableObject, Request, Response, Result, State, WebSocket};
    /// # struct Chat { state: State }
    /// impl DurableObject for Chat {
    ///     # fn new(state: State) -> Self { Chat { state } }
    ///     # fn fetch(&mut self, _r: Request) -> Result<Response> { Ok(Response::new(204)) }
    ///     fn websocket_close(&mut self, ws: WebSocket, code: u16, reason: String, _clean: bool) -> Result<()> {
    ///         for other in self.state.websockets().get(None) {
    ///             if other != ws {
    ///                 other.send_text(&format!("someone left ({code} {reason})"))?;
    ///             }
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn websocket_close(
        &mut self,
        ws: WebSocket,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        let _ = (ws, code, reason, was_clean);
        Ok(())
    }

    /// A WebSocket failed. The default does nothing.
    ///
    /// ```no_run
    /// # use duro_sdk::{DurableObject, Request, Response, Result, State, WebSocket};
    /// # struct Chat { state: State }
    /// impl DurableObject for Chat {
    ///     # fn new(state: State) -> Self { Chat { state } }
    ///     # fn fetch(&mut self, _r: Request) -> Result<Response> { Ok(Response::new(204)) }
    ///     fn websocket_error(&mut self, ws: WebSocket, error: String) -> Result<()> {
    ///         eprintln!("socket {}: {error}", ws.id());
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn websocket_error(&mut self, ws: WebSocket, error: String) -> Result<()> {
        let _ = (ws, error);
        Ok(())
    }
}

/// Exports a [`DurableObject`] type as the component's class.
///
/// ```no_run
/// struct Hello;
/// impl duro_sdk::DurableObject for Hello {
///     fn new(_state: duro_sdk::State) -> Self { Hello }
///     fn fetch(&mut self, _r: duro_sdk::Request) -> duro_sdk::Result<duro_sdk::Response> {
///         Ok(duro_sdk::Response::text(200, "hello"))
///     }
/// }
/// duro_sdk::export!(Hello); // one class per component
/// ```
#[macro_export]
macro_rules! export {
    ($ty:ty) => {
        const _: () = {
            struct DuroGuest;
            impl $crate::wit::Guest for DuroGuest {
                fn fetch(request: $crate::wit::Request) -> $crate::wit::Response {
                    $crate::__private::fetch::<$ty>(request)
                }
                fn alarm(info: $crate::wit::AlarmInfo) -> ::core::result::Result<(), String> {
                    $crate::__private::alarm::<$ty>(info)
                }
                fn websocket_message(ws: u64, message: $crate::wit::Message) {
                    $crate::__private::websocket_message::<$ty>(ws, message)
                }
                fn websocket_close(ws: u64, code: u16, reason: String, was_clean: bool) {
                    $crate::__private::websocket_close::<$ty>(ws, code, reason, was_clean)
                }
                fn websocket_error(ws: u64, error: String) {
                    $crate::__private::websocket_error::<$ty>(ws, error)
                }
                fn rpc(method: String, args: Vec<u8>) -> ::core::result::Result<Vec<u8>, Vec<u8>> {
                    $crate::__private::rpc::<$ty>(method, args)
                }
                // A Rust class keeps no timers: the runtime never asks it to wake.
                fn wake() {}
            }
    $crate::wit::__export_duro_world!(DuroGuest with_types_in $crate::wit);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    use std::any::Any;
    use std::cell::RefCell;

    use super::{AlarmInfo, DurableObject, State, WebSocket, wit};

    thread_local! {
        /// The object's value; wasm is single-threaded and events never re-enter.
        static OBJECT: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    /// Runs `f` on the object's value, creating it on first use.
    fn with_object<T: DurableObject, R>(f: impl FnOnce(&mut T) -> R) -> R {
        OBJECT.with(|cell| {
            let mut slot = cell.borrow_mut();
            let object = slot.get_or_insert_with(|| Box::new(T::new(State::default())));
            let object = object
                .downcast_mut::<T>()
                .expect("one DurableObject type per component");
            f(object)
        })
    }

    pub fn alarm<T: DurableObject>(info: wit::AlarmInfo) -> Result<(), String> {
        let info = AlarmInfo {
            retry_count: info.retry_count,
            is_retry: info.is_retry,
        };
        with_object::<T, _>(|object| object.alarm(info)).map_err(|e| e.to_string())
    }

    /// WebSocket handlers return nothing to the runtime: an error is printed to stderr (the
    /// runtime's log).
    fn report(what: &str, outcome: super::Result<()>) {
        if let Err(error) = outcome {
            eprintln!("{what} failed: {error}");
        }
    }

    pub fn websocket_message<T: DurableObject>(ws: u64, message: wit::Message) {
        let outcome = with_object::<T, _>(|o| o.websocket_message(WebSocket(ws), message.into()));
        report("websocket_message", outcome);
    }

    pub fn websocket_close<T: DurableObject>(ws: u64, code: u16, reason: String, was_clean: bool) {
        let outcome =
            with_object::<T, _>(|o| o.websocket_close(WebSocket(ws), code, reason, was_clean));
        report("websocket_close", outcome);
    }

    pub fn websocket_error<T: DurableObject>(ws: u64, error: String) {
        let outcome = with_object::<T, _>(|o| o.websocket_error(WebSocket(ws), error));
        report("websocket_error", outcome);
    }

    pub fn rpc<T: DurableObject>(method: String, args: Vec<u8>) -> Result<Vec<u8>, Vec<u8>> {
        crate::rpc::dispatch(&args, |args| with_object::<T, _>(|o| o.call(&method, args)))
    }

    pub fn fetch<T: DurableObject>(request: wit::Request) -> wit::Response {
        let outcome = with_object::<T, _>(|object| object.fetch(request.into()));
        crate::worker::answer(outcome).into()
    }
}
