//! The `namespaces` host interface: ids of the deploy config's bindings, and calls to objects
//! through stubs, for objects and workers alike.
//!
//! A call goes straight to the callee's mailbox through the [`Reach`] handle (no socket), as an
//! event of the callee, and carries the chain of objects waiting on it: a callee already in the chain
//! would wait on itself, so the call is refused as a cycle. Every call has a timeout. An object's
//! writes made before a call are committed and made durable before the call leaves (the output
//! gate covers calls); the store's `before_call` does that.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use std::time::Duration;

use wasmtime::component::{Resource, ResourceTable};

pub(super) use super::generated::duro::object::namespaces::{
    self, CallError, Request as WitRequest,
};
pub(super) use super::generated::duro::object::types::Response as WitResponse;
pub(super) use super::generated::duro::object::{assets, env};
use super::{Accepted, Callee, Namespace, Reach, Request, Response, Unreached};
use crate::ids::{ObjectId, ObjectKey};

/// The objects whose events wait on a call, the caller included (empty for a worker).
pub type CallChain = Arc<[ObjectKey]>;

/// Most names `id-from-name` remembers per instance (so `get` can pass them on).
const MAX_NAMES: usize = 1024;

/// An object of a binding, as a guest holds it (the `stub` resource).
#[derive(Clone)]
pub struct Stub {
    class: Namespace,
    id: ObjectId,
    name: Option<String>,
}

/// What one store needs to make calls.
pub struct Calls {
    reach: Arc<dyn Reach>,
    timeout: Duration,
    /// The chain of the running event, this object included.
    chain: CallChain,
    /// Names behind the ids `id-from-name` gave this instance.
    names: HashMap<ObjectId, String>,
    /// A WebSocket a callee accepted for an upgrade request this store forwarded: if the store's
    /// own `fetch` then answers 101, the socket is handed to its client.
    pub forwarded: Option<Accepted>,
    /// Set in a shared instance: shows the instance's other objects when this guest waits.
    pub watch: Option<Arc<CallWatch>>,
    /// Calls started without waiting, until their answers are taken.
    started: Arc<Started>,
}

/// The host of the URL a guest waits on for a started call's answer (`/{id}`).
pub const CALL_HOST: &str = "call.duro.invalid";

/// Calls started without waiting (`stub.start-fetch`, `stub.start-call`: the JS SDK in an object,
/// so that the object's other events, a call back to it included, run meanwhile), until their
/// answers are taken (`finish-fetch`, `finish-call`). The guest waits for one with a `wasi:http`
/// request to [`CALL_HOST`] ([`Started::wait`]).
#[derive(Default)]
pub struct Started {
    next: AtomicU64,
    /// By id: the answer, once there.
    calls: std::sync::Mutex<HashMap<u64, Option<Result<Response, CallError>>>>,
    /// Wakes the waits at every answer (each checks its own).
    answered: tokio::sync::Notify,
    /// The last call started to each object, settled once answered: the next one to that object
    /// leaves after it, so calls arrive in the order they were made.
    last: std::sync::Mutex<HashMap<ObjectKey, Shared<BoxFuture<'static, ()>>>>,
}

impl Started {
    /// Resolves once the call `id` answered (at once for an unknown id).
    pub fn wait(self: &Arc<Self>, id: u64) -> impl Future<Output = ()> + Send + 'static {
        let started = self.clone();
        async move {
            crate::wait_until(&started.answered, || {
                !matches!(crate::lock(&started.calls).get(&id), Some(None))
            })
            .await;
        }
    }

    fn answer(&self, id: u64, answer: Result<Response, CallError>) {
        if let Some(slot) = crate::lock(&self.calls).get_mut(&id) {
            *slot = Some(answer);
        }
        self.answered.notify_waiters();
    }
}

/// Whether the guest of a shared instance waits on a call (to another object, or an outgoing HTTP
/// request) now. The instance's other objects must not queue behind such a wait (the callee may
/// be one of them, or wait on one), so they move to another instance instead (see
/// `class::shared`).
#[derive(Default)]
pub struct CallWatch {
    /// Calls in progress (a guest may have several HTTP requests in flight).
    calling: AtomicUsize,
    changed: tokio::sync::Notify,
}

impl CallWatch {
    pub fn is_calling(&self) -> bool {
        self.calling.load(Ordering::Acquire) > 0
    }

    /// Resolves at the next start of a call (enable it before checking `is_calling`).
    pub fn call_started(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    pub fn begin(self: &Arc<Self>) -> Waiting {
        self.calling.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        Waiting(self.clone())
    }
}

/// A call in progress; ends when it is dropped.
pub struct Waiting(Arc<CallWatch>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.calling.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Calls {
    pub fn new(reach: Arc<dyn Reach>, timeout: Duration) -> Self {
        Self {
            reach,
            timeout,
            chain: Arc::from(Vec::new()),
            names: HashMap::new(),
            forwarded: None,
            watch: None,
            started: Arc::default(),
        }
    }

    /// The calls this store starts without waiting (the `wasi:http` hooks wait on them).
    pub fn started(&self) -> Arc<Started> {
        self.started.clone()
    }

    /// One of the deploy config's vars or secrets, as it is now.
    pub fn var(&self, name: &str) -> Option<String> {
        self.reach.var(name)
    }

    /// The deploy config's vars and secrets, as they are now.
    pub fn vars(&self) -> Vec<(String, String)> {
        self.reach.vars()
    }

    /// The deploy config's static assets, as they are now.
    pub fn assets(&self) -> Option<Arc<crate::assets::Assets>> {
        self.reach.assets()
    }

    /// Answers `request` from the static assets (the `assets` binding's `fetch`).
    pub fn fetch_asset(&self, request: &WitRequest) -> WitResponse {
        let Some(assets) = self.assets() else {
            return WitResponse {
                status: 404,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: b"no assets are deployed".to_vec(),
            };
        };
        // `http://host/path?query`, or a bare path.
        let after_scheme = request
            .url
            .split_once("://")
            .map_or(&*request.url, |(_, r)| r);
        let target = after_scheme.find('/').map_or("/", |at| &after_scheme[at..]);
        let target = target.split_once('#').map_or(target, |(t, _)| t);
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let method = request.method.to_ascii_uppercase();
        let answer = assets.fetch(&crate::assets::AssetRequest::new(
            &method, path, query, header,
        ));
        WitResponse {
            status: answer.status,
            headers: answer.headers,
            body: answer.body.into(),
        }
    }

    /// Starts an event whose calls carry `chain`.
    pub fn begin_event(&mut self, chain: CallChain) {
        self.chain = chain;
        self.forwarded = None;
    }

    fn class_of(&self, binding: &str) -> Result<Namespace, CallError> {
        self.reach.namespace(binding).map_err(call_error)
    }

    pub fn id_from_name(&mut self, binding: &str, name: &str) -> Result<String, CallError> {
        let id = self.class_of(binding)?.ids.from_name(name);
        if self.names.len() >= MAX_NAMES {
            self.names.clear();
        }
        self.names.insert(id, name.to_string());
        Ok(id.to_hex())
    }

    /// The deploy config's binding names, as they are now.
    pub fn binding_names(&self) -> Vec<String> {
        self.reach.bindings()
    }

    pub fn new_unique_id(&mut self, binding: &str) -> Result<String, CallError> {
        Ok(self.class_of(binding)?.ids.new_unique().to_hex())
    }

    pub fn id_from_string(&mut self, binding: &str, id: &str) -> Result<String, CallError> {
        let class = self.class_of(binding)?;
        let id = class
            .ids
            .from_string(id)
            .map_err(|e| CallError::BadId(e.to_string()))?;
        Ok(id.to_hex())
    }

    pub fn get(
        &mut self,
        table: &mut ResourceTable,
        binding: &str,
        id: &str,
    ) -> wasmtime::Result<Result<Resource<Stub>, CallError>> {
        let class = match self.class_of(binding) {
            Ok(class) => class,
            Err(e) => return Ok(Err(e)),
        };
        let id = match class.ids.from_string(id) {
            Ok(id) => id,
            Err(e) => return Ok(Err(CallError::BadId(e.to_string()))),
        };
        let name = self.names.get(&id).cloned();
        Ok(Ok(table.push(Stub { class, id, name })?))
    }

    /// The chain a call from this store carries, or the cycle error when `callee` waits on it.
    fn chain_to(&self, callee: &ObjectKey, class: &Namespace) -> Result<CallChain, CallError> {
        if self.chain.contains(callee) {
            return Err(CallError::Cycle(format!(
                "the call to {} {} would wait on itself ({} objects in the chain of calls)",
                class.class,
                callee.id,
                self.chain.len()
            )));
        }
        Ok(self.chain.clone())
    }

    /// The object a stub stands for.
    pub fn target(&self, table: &ResourceTable, stub: &Resource<Stub>) -> wasmtime::Result<Stub> {
        Ok(table.get(stub)?.clone())
    }

    /// Calls the stub's object with `request`. The caller's own writes must be durable by now.
    pub async fn fetch(
        &mut self,
        target: Stub,
        request: WitRequest,
    ) -> wasmtime::Result<Result<WitResponse, CallError>> {
        let mut response = match self.send(target, fetch_request(request)).await {
            Ok(response) => response,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(accepted) = response.websocket.take() {
            self.forward(accepted).await;
        }
        Ok(Ok(wit_response(response)))
    }

    /// Calls the method `method` of the stub's object with encoded `args` (see [`super::rpc`]):
    /// the encoded value it returned (`Ok`) or threw (`Err`). The caller's own writes must be
    /// durable by now.
    pub async fn call(
        &mut self,
        target: Stub,
        method: String,
        args: Vec<u8>,
    ) -> Result<Result<Vec<u8>, Vec<u8>>, CallError> {
        let response = self.send(target, rpc_request(method, args)).await?;
        Ok(rpc_answer(response))
    }

    /// Delivers `request` to the stub's object as an event, with this store's chain of calls,
    /// under the call timeout.
    async fn send(&mut self, target: Stub, mut request: Request) -> Result<Response, CallError> {
        let key = target.key();
        request.callers = self.chain_to(&key, &target.class)?;
        let _waiting = self.watch.as_ref().map(CallWatch::begin);
        deliver(&*self.reach, self.timeout, target, request).await
    }

    /// Starts a call of the stub's object with `request` (a `fetch`, or an RPC call with
    /// `request.rpc` set) and answers its id at once; the answer waits in [`Started`]. The
    /// caller is left out of the callee's chain: it does not hold its instance while it waits,
    /// so a call back to it is served (its inbox) instead of refused. The caller's own writes
    /// must be durable by now.
    pub fn start(&mut self, target: Stub, mut request: Request) -> Result<u64, CallError> {
        let key = target.key();
        let waiting_on_us = &self.chain[..self.chain.len().saturating_sub(1)];
        if waiting_on_us.contains(&key) {
            return Err(self
                .chain_to(&key, &target.class)
                .expect_err("in the chain"));
        }
        request.callers = waiting_on_us.into();
        let started = self.started.clone();
        let id = started.next.fetch_add(1, Ordering::Relaxed) + 1;
        crate::lock(&started.calls).insert(id, None);
        let (answered, mine) = tokio::sync::oneshot::channel::<()>();
        let mine = mine.map(|_| ()).boxed().shared();
        let after = crate::lock(&started.last).insert(key.clone(), mine.clone());
        let reach = self.reach.clone();
        let timeout = self.timeout;
        let waiting = self.watch.as_ref().map(CallWatch::begin);
        tokio::spawn(async move {
            if let Some(after) = after {
                after.await;
            }
            let mut answer = deliver(&*reach, timeout, target, request).await;
            if let Ok(response) = &mut answer
                && let Some(accepted) = response.websocket.take()
            {
                accepted.never_opened().await; // an upgrade is never started
            }
            drop(waiting);
            let _ = answered.send(());
            {
                let mut last = crate::lock(&started.last);
                if last.get(&key).is_some_and(|l| l.ptr_eq(&mine)) {
                    last.remove(&key);
                }
            }
            started.answer(id, answer);
        });
        Ok(id)
    }

    /// The answer of the started call `id`, taken (an error if it has none yet).
    pub fn finish(&mut self, id: u64) -> Result<Response, CallError> {
        let mut calls = crate::lock(&self.started.calls);
        match calls.remove(&id) {
            Some(Some(answer)) => answer,
            Some(None) => {
                calls.insert(id, None);
                Err(CallError::Failed(format!("call {id} has not answered yet")))
            }
            None => Err(CallError::Failed(format!("no call {id} was started here"))),
        }
    }

    /// Keeps a socket a callee accepted; one left over from an earlier call never opened.
    async fn forward(&mut self, accepted: Accepted) {
        if let Some(unused) = self.forwarded.replace(accepted) {
            unused.never_opened().await;
        }
    }

    pub fn stub_id(
        &self,
        table: &ResourceTable,
        stub: &Resource<Stub>,
    ) -> wasmtime::Result<String> {
        Ok(self.target(table, stub)?.id.to_hex())
    }
}

/// A stub's `fetch` as an event's request.
pub(super) fn fetch_request(request: WitRequest) -> Request {
    Request {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: request.body.into(),
        callers: Default::default(),
        rpc: None,
    }
}

/// An RPC call of `method` with encoded `args` as an event's request (see [`super::rpc`]).
pub(super) fn rpc_request(method: String, args: Vec<u8>) -> Request {
    Request {
        method: "POST".to_string(),
        url: format!("rpc:{method}"),
        headers: Vec::new(),
        body: args.into(),
        callers: Default::default(),
        rpc: Some(method),
    }
}

pub(super) fn wit_response(response: Response) -> WitResponse {
    WitResponse {
        status: response.status,
        headers: response.headers,
        body: response.body.into(),
    }
}

/// An RPC call's answer: the encoded value returned (`Ok`) or thrown (`Err`).
pub(super) fn rpc_answer(response: Response) -> Result<Vec<u8>, Vec<u8>> {
    let value = response.body.into();
    match response.status {
        super::rpc::RETURNED => Ok(value),
        _ => Err(value),
    }
}

impl Stub {
    fn key(&self) -> ObjectKey {
        ObjectKey {
            incarnation: self.class.incarnation,
            id: self.id,
        }
    }
}

/// Delivers `request` to `target`'s object as an event under `timeout`.
async fn deliver(
    reach: &dyn Reach,
    timeout: Duration,
    target: Stub,
    request: Request,
) -> Result<Response, CallError> {
    let key = target.key();
    let Stub { class, id, name } = target;
    crate::access::reached(&class.class, name.as_deref(), id);
    let callee = Callee {
        class: class.class.clone(),
        key,
        name,
    };
    match tokio::time::timeout(timeout, reach.deliver(callee, request)).await {
        Err(_) => Err(CallError::Timeout(format!(
            "{} {id} did not answer within {} ms",
            class.class,
            timeout.as_millis()
        ))),
        Ok(Err(error)) => Err(call_error(error)),
        Ok(Ok(response)) => Ok(response),
    }
}

/// Store data that can make calls: objects and workers.
pub(super) trait CallSite: Send {
    fn calls(&mut self) -> (&mut Calls, &mut ResourceTable);
    /// Runs before a call leaves: an object makes its writes so far durable (the output gate);
    /// an error that is `Err` traps.
    fn before_call(
        &mut self,
    ) -> impl std::future::Future<Output = wasmtime::Result<Result<(), CallError>>> + Send;
}

/// The object `stub` stands for, once the caller's writes so far are durable (the output gate
/// covers calls); `Ok(Err(_))` when they could not be made durable.
pub(super) async fn leave<S: CallSite>(
    site: &mut S,
    stub: &Resource<Stub>,
) -> wasmtime::Result<Result<Stub, CallError>> {
    let target = {
        let (calls, table) = site.calls();
        calls.target(table, stub)?
    };
    Ok(site.before_call().await?.map(|()| target))
}

/// Implements the `namespaces` host traits for a [`CallSite`] store type (bindgen's own
/// `&mut T` impls rule out a blanket impl).
macro_rules! namespaces_host {
    ($store:ty) => {
        impl $crate::abi::calls::namespaces::Host for $store {
            fn id_from_name(
                &mut self,
                binding: String,
                name: String,
            ) -> Result<String, $crate::abi::calls::CallError> {
                $crate::abi::calls::CallSite::calls(self)
                    .0
                    .id_from_name(&binding, &name)
            }

            fn new_unique_id(
                &mut self,
                binding: String,
            ) -> Result<String, $crate::abi::calls::CallError> {
                $crate::abi::calls::CallSite::calls(self)
                    .0
                    .new_unique_id(&binding)
            }

            fn id_from_string(
                &mut self,
                binding: String,
                id: String,
            ) -> Result<String, $crate::abi::calls::CallError> {
                $crate::abi::calls::CallSite::calls(self)
                    .0
                    .id_from_string(&binding, &id)
            }

            fn binding_names(&mut self) -> Vec<String> {
                $crate::abi::calls::CallSite::calls(self).0.binding_names()
            }

            fn finish_fetch(
                &mut self,
                id: u64,
            ) -> Result<$crate::abi::calls::WitResponse, $crate::abi::calls::CallError> {
                let calls = $crate::abi::calls::CallSite::calls(self).0;
                calls.finish(id).map($crate::abi::calls::wit_response)
            }

            fn finish_call(
                &mut self,
                id: u64,
            ) -> Result<Result<Vec<u8>, Vec<u8>>, $crate::abi::calls::CallError> {
                let calls = $crate::abi::calls::CallSite::calls(self).0;
                calls.finish(id).map($crate::abi::calls::rpc_answer)
            }

            fn get(
                &mut self,
                binding: String,
                id: String,
            ) -> Result<
                wasmtime::component::Resource<$crate::abi::calls::Stub>,
                $crate::abi::calls::CallError,
            > {
                let (calls, table) = $crate::abi::calls::CallSite::calls(self);
                calls.get(table, &binding, &id).unwrap_or_else(|e| {
                    Err($crate::abi::calls::CallError::Failed(format!("{e:#}")))
                })
            }
        }

        impl $crate::abi::calls::namespaces::HostStub for $store {
            fn id(
                &mut self,
                stub: wasmtime::component::Resource<$crate::abi::calls::Stub>,
            ) -> String {
                let (calls, table) = $crate::abi::calls::CallSite::calls(self);
                calls.stub_id(table, &stub).unwrap_or_default()
            }

            async fn fetch(
                &mut self,
                stub: wasmtime::component::Resource<$crate::abi::calls::Stub>,
                request: $crate::abi::calls::WitRequest,
            ) -> wasmtime::Result<
                Result<$crate::abi::calls::WitResponse, $crate::abi::calls::CallError>,
            > {
                let target = match $crate::abi::calls::leave(self, &stub).await? {
                    Ok(target) => target,
                    Err(error) => return Ok(Err(error)),
                };
                let answer = $crate::abi::calls::CallSite::calls(self)
                    .0
                    .fetch(target, request)
                    .await;
                $crate::abi::Metered::meter(self).waited = true;
                answer
            }

            async fn call(
                &mut self,
                stub: wasmtime::component::Resource<$crate::abi::calls::Stub>,
                method: String,
                args: Vec<u8>,
            ) -> wasmtime::Result<Result<Result<Vec<u8>, Vec<u8>>, $crate::abi::calls::CallError>>
            {
                let target = match $crate::abi::calls::leave(self, &stub).await? {
                    Ok(target) => target,
                    Err(error) => return Ok(Err(error)),
                };
                let answer = $crate::abi::calls::CallSite::calls(self)
                    .0
                    .call(target, method, args)
                    .await;
                $crate::abi::Metered::meter(self).waited = true;
                Ok(answer)
            }

            async fn start_fetch(
                &mut self,
                stub: wasmtime::component::Resource<$crate::abi::calls::Stub>,
                request: $crate::abi::calls::WitRequest,
            ) -> wasmtime::Result<Result<u64, $crate::abi::calls::CallError>> {
                let target = match $crate::abi::calls::leave(self, &stub).await? {
                    Ok(target) => target,
                    Err(error) => return Ok(Err(error)),
                };
                let request = $crate::abi::calls::fetch_request(request);
                Ok($crate::abi::calls::CallSite::calls(self)
                    .0
                    .start(target, request))
            }

            async fn start_call(
                &mut self,
                stub: wasmtime::component::Resource<$crate::abi::calls::Stub>,
                method: String,
                args: Vec<u8>,
            ) -> wasmtime::Result<Result<u64, $crate::abi::calls::CallError>> {
                let target = match $crate::abi::calls::leave(self, &stub).await? {
                    Ok(target) => target,
                    Err(error) => return Ok(Err(error)),
                };
                let request = $crate::abi::calls::rpc_request(method, args);
                Ok($crate::abi::calls::CallSite::calls(self)
                    .0
                    .start(target, request))
            }

            fn drop(
                &mut self,
                stub: wasmtime::component::Resource<$crate::abi::calls::Stub>,
            ) -> wasmtime::Result<()> {
                $crate::abi::calls::CallSite::calls(self).1.delete(stub)?;
                Ok(())
            }
        }
    };
}
pub(super) use namespaces_host;

/// Implements the `env` host trait (the deploy config's vars and secrets) for a [`CallSite`]
/// store type.
macro_rules! env_host {
    ($store:ty) => {
        impl $crate::abi::calls::env::Host for $store {
            fn get(&mut self, name: String) -> Option<String> {
                $crate::abi::calls::CallSite::calls(self).0.var(&name)
            }

            fn all(&mut self) -> Vec<(String, String)> {
                $crate::abi::calls::CallSite::calls(self).0.vars()
            }
        }
    };
}
pub(super) use env_host;

/// Implements the `assets` host trait (the static assets' binding) for a [`CallSite`] store type.
macro_rules! assets_host {
    ($store:ty) => {
        impl $crate::abi::calls::assets::Host for $store {
            fn binding(&mut self) -> Option<String> {
                let calls = $crate::abi::calls::CallSite::calls(self).0;
                calls.assets().and_then(|a| a.options.binding.clone())
            }

            fn fetch(
                &mut self,
                request: $crate::abi::calls::WitRequest,
            ) -> $crate::abi::calls::WitResponse {
                $crate::abi::calls::CallSite::calls(self)
                    .0
                    .fetch_asset(&request)
            }
        }
    };
}
pub(super) use assets_host;

fn call_error(error: Unreached) -> CallError {
    match error {
        Unreached::UnknownBinding(text) => CallError::UnknownBinding(text),
        Unreached::Overloaded(text) => CallError::Overloaded(text),
        Unreached::Failed(text) => CallError::Failed(text),
    }
}
