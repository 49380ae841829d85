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
use std::sync::atomic::{AtomicUsize, Ordering};
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
        }
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
        let request = Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body.into(),
            callers: Default::default(),
            rpc: None,
        };
        let response = match self.send(target, request).await {
            Ok(response) => response,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(accepted) = response.websocket {
            self.forward(accepted).await;
        }
        Ok(Ok(WitResponse {
            status: response.status,
            headers: response.headers,
            body: response.body.into(),
        }))
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
        let request = Request {
            method: "POST".to_string(),
            url: format!("rpc:{method}"),
            headers: Vec::new(),
            body: args.into(),
            callers: Default::default(),
            rpc: Some(method),
        };
        let response = self.send(target, request).await?;
        let value = response.body.into();
        Ok(match response.status {
            super::rpc::RETURNED => Ok(value),
            _ => Err(value),
        })
    }

    /// Delivers `request` to the stub's object as an event, with this store's chain of calls,
    /// under the call timeout.
    async fn send(&mut self, target: Stub, mut request: Request) -> Result<Response, CallError> {
        let Stub { class, id, name } = target;
        let key = ObjectKey {
            incarnation: class.incarnation,
            id,
        };
        request.callers = self.chain_to(&key, &class)?;
        let _waiting = self.watch.as_ref().map(CallWatch::begin);
        crate::access::reached(&class.class, name.as_deref(), id);
        let callee = Callee {
            class: class.class.clone(),
            key,
            name,
        };
        match tokio::time::timeout(self.timeout, self.reach.deliver(callee, request)).await {
            Err(_) => Err(CallError::Timeout(format!(
                "{} {id} did not answer within {} ms",
                class.class,
                self.timeout.as_millis()
            ))),
            Ok(Err(error)) => Err(call_error(error)),
            Ok(Ok(response)) => Ok(response),
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
