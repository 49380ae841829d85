//! `wasi:http` for guests: the types, and an outgoing handler whose requests pass the output gate
//! (an object's writes so far are durable before its request leaves, as for calls) and then the
//! caller's outbound policy (`outbound::send`).

use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi_http::p2::bindings::LinkOptions;
use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttp, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

use http_body_util::BodyExt;

use super::Reach;
use super::calls::{CALL_HOST, CallError, CallSite, CallWatch, Started};
use super::inbox::{INBOX_HOST, Inbox};
use crate::outbound::{self, Caller};

/// The `wasi:http` version whose outgoing handler this module defines (the one
/// `wasmtime-wasi-http` implements; guests built against any 0.2.x link to it).
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// The `wasi:http` part of a store: the context, and the hooks that send under the caller's
/// policy.
pub struct HttpState {
    ctx: WasiHttpCtx,
    hooks: Hooks,
}

impl HttpState {
    pub fn new(caller: Caller, reach: Arc<dyn Reach>, started: Arc<Started>) -> Self {
        Self {
            ctx: WasiHttpCtx::new(),
            hooks: Hooks {
                caller,
                reach,
                watch: None,
                inbox: None,
                started,
            },
        }
    }

    /// The mounted object's inbox: a request to [`INBOX_HOST`] waits on it.
    pub fn with_inbox(mut self, inbox: Option<Arc<Inbox>>) -> Self {
        self.set_inbox(inbox);
        self
    }

    pub fn set_inbox(&mut self, inbox: Option<Arc<Inbox>>) {
        self.hooks.inbox = inbox;
    }

    /// In a shared instance: an outgoing request counts as a call while it waits for its
    /// answer, so the instance's other objects move instead of queueing behind it (the request
    /// may come back to one of them).
    pub fn watch_calls(&mut self, watch: Arc<CallWatch>) {
        self.hooks.watch = Some(watch);
    }

    /// The view `wasi:http` host functions work on.
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            ctx: &mut self.ctx,
            table,
            hooks: &mut self.hooks,
        }
    }
}

struct Hooks {
    caller: Caller,
    reach: Arc<dyn Reach>,
    watch: Option<Arc<CallWatch>>,
    inbox: Option<Arc<Inbox>>,
    /// The store's calls started without waiting: a request to [`CALL_HOST`] waits on one.
    started: Arc<Started>,
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<outbound::Sent, Error>> + Send> {
        match request.uri().host() {
            Some(INBOX_HOST) => return Box::new(self.wait_for_inbox()),
            Some(CALL_HOST) => {
                let id = request
                    .uri()
                    .path()
                    .trim_start_matches('/')
                    .parse()
                    .unwrap_or(0);
                return Box::new(answered(self.started.wait(id)));
            }
            _ => {}
        }
        // Looked up per request: a new deploy's policy applies at once.
        let policy = self.reach.outbound_policy(&self.caller);
        let sent = outbound::send(self.caller.clone(), policy, request, options);
        match self.watch.as_ref().map(CallWatch::begin) {
            None => Box::new(sent),
            Some(waiting) => Box::new(async move {
                let sent = sent.await;
                drop(waiting);
                sent
            }),
        }
    }
}

impl Hooks {
    /// The guest listens on its inbox: an empty 204 once an event waits there or the event it
    /// runs has ended (at once without an object mounted). Counts as a call in a shared
    /// instance: the instance's other objects move rather than queue behind the wait.
    fn wait_for_inbox(
        &self,
    ) -> impl Future<Output = Result<outbound::Sent, Error>> + Send + 'static {
        let wait = self.inbox.as_ref().map(Inbox::wait);
        let waiting = self.watch.as_ref().map(CallWatch::begin);
        answered(async move {
            if let Some(wait) = wait {
                wait.await;
            }
            drop(waiting);
        })
    }
}

/// An empty 204 once `wait` is over: the answer to a guest's wait on the runtime itself.
async fn answered(wait: impl Future<Output = ()>) -> Result<outbound::Sent, Error> {
    wait.await;
    let body = http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::NO_CONTENT;
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> =
        Box::new(std::future::ready(Ok(())));
    Ok((response, io))
}

/// Adds `wasi:http/types` and the gated `wasi:http/outgoing-handler` to a linker.
pub fn add_to_linker<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiHttpView + CallSite + 'static,
{
    let options = LinkOptions::default();
    types::add_to_linker::<_, WasiHttp>(linker, &options.into(), T::http)?;
    linker.instance(OUTGOING_HANDLER)?.func_wrap_async(
        "handle",
        |mut store: StoreContextMut<'_, T>,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<RequestOptions>>,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                // Waiting on the inbox too: the writes so far become durable, as Cloudflare
                // flushes them when the handler awaits (an alarm set is scheduled then).
                if let Err(error) = state.before_call().await? {
                    let reason = match error {
                        CallError::Failed(reason) => reason,
                        other => format!("{other:?}"),
                    };
                    return Ok((Err(types::ErrorCode::InternalError(Some(reason))),));
                }
                let handled = outgoing_handler::Host::handle(&mut state.http(), request, options);
                match handled {
                    Ok(future) => Ok((Ok::<Resource<HostFutureIncomingResponse>, _>(future),)),
                    Err(error) => Ok((Err(error.downcast()?),)),
                }
            })
        },
    )?;
    Ok(())
}
