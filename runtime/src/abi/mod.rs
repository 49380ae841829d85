//! The guest ABI: bindings generated from `wit/`, the data each object's `Store` carries, and
//! `Instance`, the one way the rest of the runtime calls into a guest.
//!
//! Generated types never leave this module: callers pass and get domain types (`Request`,
//! `Response`, `ObjectStorage`, `GuestError`). Host functions here convert and delegate; the
//! storage logic lives in `storage`. Limits on a running guest (CPU by epoch interruption, memory
//! by a resource limiter) are enforced here, per store.

mod calls;
mod host;
mod http;
pub mod inbox;
mod log;
mod memory;
mod reach;
mod request;
pub mod rpc;
mod sql;
pub mod worker;

pub use calls::{CallChain, CallWatch, Calls};
pub use memory::MemoryBudget;
pub use reach::{Callee, Namespace, Reach, Unreached};
pub use request::{Accepted, Holder, Request, Response, Tunnel};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, HasSelf, Lift, Linker, Lower,
    ResourceTable, TypedFunc,
};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::ids::{ClassName, ObjectId};
use crate::lock;
use crate::storage::ObjectStorage;
use crate::websocket::{Message, SocketId, Sockets};

#[allow(missing_docs, clippy::all)]
mod generated {
    wasmtime::component::bindgen!({
        world: "object-core",
        path: "../wit",
        imports: {
            "duro:object/namespaces.[method]stub.fetch": async | trappable,
            "duro:object/namespaces.[method]stub.call": async | trappable,
            "duro:object/namespaces.[method]stub.start-fetch": async | trappable,
            "duro:object/namespaces.[method]stub.start-call": async | trappable,
            "duro:object/sql.exec": trappable,
            "duro:object/inbox.respond": async | trappable,
            "duro:object/inbox.respond-rpc": async | trappable,
            "duro:object/inbox.done": async | trappable,
        },
        exports: { default: async },
        with: { "duro:object/namespaces.stub": super::calls::Stub },
    });
}

/// What a guest may import, said when a component imports anything else.
const IMPORTS_HINT: &str = "duro provides WASI 0.2 (wasi:io, wasi:clocks, wasi:random, wasi:cli, \
     wasi:filesystem with nothing preopened, wasi:sockets without network access, \
     wasi:http/outgoing-handler under the deploy config's outbound policy) and the duro:object \
     interfaces (storage, state, websockets, namespaces, env, timers, assets, sql, inbox); build the component without that \
     import, or stub it (componentize-py --stub-wasi, componentize-js disableFeatures)";

/// A component that cannot be linked: the reason, and for a missing import what duro offers.
fn link_error(error: wasmtime::Error) -> String {
    let text = format!("{error:#}");
    if text.contains("not found in the linker") {
        format!("{text}; {IMPORTS_HINT}")
    } else {
        text
    }
}

/// How often the epoch advances: the granularity of the CPU limit, and the longest a spinning
/// guest runs before it yields its thread to other objects (10 ms slices kept a neighbour's p99
/// at 40 ms behind 4 spinning guests on 2 cores; 1 ms slices: 7 ms).
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Builds the linker every class is checked against: WASI p2 plus the `duro:object` imports.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<ObjectState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    http::add_to_linker(&mut linker)?;
    generated::ObjectCore::add_to_linker::<_, HasSelf<ObjectState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// A class's code with its imports resolved and exports type-checked, ready to instantiate.
/// Cheap to clone (shared compiled code).
#[derive(Clone)]
pub struct ClassCode {
    pre: generated::ObjectCorePre<ObjectState>,
    /// The optional exports (type-checked at instantiation).
    exports: OptionalExports,
}

/// The types of the optional exports.
type AlarmFunc = TypedFunc<(AlarmInfo,), (Result<(), String>,)>;
type WsMessageFunc = TypedFunc<(SocketId, WitMessage), ()>;
type WsCloseFunc = TypedFunc<(SocketId, u16, String, bool), ()>;
type WsErrorFunc = TypedFunc<(SocketId, String), ()>;
type EvictFunc = TypedFunc<(String,), ()>;
type RpcFunc = TypedFunc<(String, Vec<u8>), (Result<Vec<u8>, Vec<u8>>,)>;
type WakeFunc = TypedFunc<(), ()>;

/// Export indices of the optional handlers.
#[derive(Clone)]
struct OptionalExports {
    alarm: Option<ComponentExportIndex>,
    ws_message: Option<ComponentExportIndex>,
    ws_close: Option<ComponentExportIndex>,
    ws_error: Option<ComponentExportIndex>,
    evict: Option<ComponentExportIndex>,
    rpc: Option<ComponentExportIndex>,
    wake: Option<ComponentExportIndex>,
}

/// The optional handlers of one instance, type-checked.
struct Handlers {
    alarm: Option<AlarmFunc>,
    ws_message: Option<WsMessageFunc>,
    ws_close: Option<WsCloseFunc>,
    ws_error: Option<WsErrorFunc>,
    evict: Option<EvictFunc>,
    rpc: Option<RpcFunc>,
    wake: Option<WakeFunc>,
}

/// What of an object outlives its instance: its storage view and its sockets.
pub struct ObjectParts {
    pub storage: ObjectStorage,
    pub sockets: Sockets,
    /// Where its events wait for a guest that runs them side by side (shared classes).
    pub inbox: Option<Arc<inbox::Inbox>>,
}

impl ClassCode {
    /// Fails with the reason when the component does not implement the world.
    pub fn new(linker: &Linker<ObjectState>, component: &Component) -> Result<Self, String> {
        let pre = linker.instantiate_pre(component).map_err(link_error)?;
        let pre = generated::ObjectCorePre::new(pre).map_err(|e| format!("{e:#}"))?;
        let export = |name| component.get_export_index(None, name);
        let exports = OptionalExports {
            alarm: export("alarm"),
            ws_message: export("websocket-message"),
            ws_close: export("websocket-close"),
            ws_error: export("websocket-error"),
            evict: export("evict"),
            rpc: export("rpc"),
            wake: export("wake"),
        };
        Ok(Self { pre, exports })
    }

    /// Whether the class exports an `alarm` handler.
    pub fn has_alarm(&self) -> bool {
        self.exports.alarm.is_some()
    }

    /// Whether the class's instances can hold many objects (it exports `evict`, the
    /// `shared-instance` world): the runtime then runs its objects in shared instances.
    pub fn is_shared(&self) -> bool {
        self.exports.evict.is_some()
    }
}

use generated::duro::object::types::{AlarmInfo, Message as WitMessage};

/// A socket's message as a guest gets it.
fn to_wit_message(message: Message) -> WitMessage {
    match message {
        Message::Text(text) => WitMessage::Text(text),
        Message::Binary(bytes) => WitMessage::Binary(bytes.into()),
    }
}

/// An optional export of `instance`, type-checked: `None` when the component lacks it.
fn optional_export<T, P, R>(
    instance: &wasmtime::component::Instance,
    store: &mut Store<T>,
    index: &Option<ComponentExportIndex>,
    name: &str,
) -> wasmtime::Result<Option<TypedFunc<P, R>>>
where
    P: ComponentNamedList + Lower + Send + Sync + 'static,
    R: ComponentNamedList + Lift + Send + Sync + 'static,
{
    index
        .as_ref()
        .map(|index| {
            instance
                .get_typed_func(&mut *store, index)
                .map_err(|e| e.context(format!("the `{name}` export has the wrong type")))
        })
        .transpose()
}

/// Who an object is, as `state` reports it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub class: ClassName,
    pub id: ObjectId,
    /// The name the object was addressed by, once known.
    pub name: Option<String>,
}

impl Identity {
    fn label(&self) -> log::Label {
        log::Label {
            id: self.id,
            name: self.name.clone(),
        }
    }
}

/// What the runtime gives an instance: its limits, the memory budget all instances share, the
/// clock, and the way to call other objects.
#[derive(Clone)]
pub struct InstanceEnv {
    pub event_cpu: Duration,
    pub memory_bytes: usize,
    pub budget: Arc<MemoryBudget>,
    /// The wall clock the guest sees (installed only when it is not the system's).
    pub clock: crate::clock::Clock,
    /// Where calls to other objects go, and what the deployment gives guests.
    pub reach: Arc<dyn Reach>,
    /// How long a call waits for its callee.
    pub call_timeout: Duration,
    /// Commits an object's writes before a call leaves.
    pub committer: crate::storage::Committer,
    /// Set when the runtime stops: every running guest and SQL statement is cut off.
    pub halt: Arc<AtomicBool>,
}

/// Why a guest call failed. After any of these the instance must be discarded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GuestError {
    #[error("Worker exceeded CPU time limit. (the event ran past its CPU limit of {0:?})")]
    CpuLimit(Duration),
    #[error("memory limit exceeded: the instance tried to grow past {0} bytes")]
    MemoryLimit(usize),
    /// The runtime-wide budget of live instance memory is used up (busy objects hold it).
    #[error("the runtime's memory budget ({0} bytes for all live objects) is used up; retry later")]
    MemoryBudget(usize),
    #[error("guest trapped: {0}")]
    Trap(String),
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// The runtime stopped while the event ran (after its drain timeout).
    #[error("the server is stopping: the event was cut off")]
    Halted,
}

/// The data of an object's `Store` (of several objects' in turn, for a shared instance).
pub struct ObjectState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The storage and sockets of the object whose event runs; `None` only while a shared
    /// instance holds no object.
    parts: Option<ObjectParts>,
    identity: Identity,
    /// The object guest log lines name.
    label: log::ObjectLabel,
    meter: Meter,
    /// The class exports `alarm` (only then may it set one).
    has_alarm: bool,
    /// Calls to other objects.
    calls: Calls,
    /// Makes the event's writes durable before a call leaves.
    committer: crate::storage::Committer,
    /// Outgoing HTTP requests.
    http: http::HttpState,
    /// What the running event asked of `timers.wake-after`, if it called it: a wake after this
    /// long, or none.
    wake_request: Option<Option<Duration>>,
}

impl ObjectState {
    /// The object's name is known: `state.name` answers it, and log lines carry it.
    fn named(&mut self, name: String) {
        self.identity.name = Some(name);
        *lock(&self.label) = Some(self.identity.label());
    }
}

impl WasiView for ObjectState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for ObjectState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        self.http.view(&mut self.table)
    }
}

/// A live instance of a class: for one object, or for many objects in turn (a shared class).
pub struct Instance {
    store: Store<ObjectState>,
    bindings: generated::ObjectCore,
    handlers: Handlers,
    limits: InstanceEnv,
}

impl Instance {
    /// Instantiates `code`, with the object's `parts` mounted (for a shared instance, maybe
    /// none yet). On failure the parts come back unharmed.
    pub async fn new(
        code: &ClassCode,
        identity: Identity,
        parts: Option<ObjectParts>,
        limits: InstanceEnv,
    ) -> Result<Self, (Option<ObjectParts>, GuestError)> {
        let label = log::ObjectLabel::default();
        *lock(&label) = Some(identity.label());
        let mut wasi = WasiCtx::builder();
        if limits.clock.is_manual() {
            wasi.wall_clock(limits.clock.clone());
        }
        let (stdout, stderr) = log::GuestLog::streams(identity.class.clone(), label.clone());
        let wasi = wasi.stdout(stdout).stderr(stderr).build();
        let inbox = parts.as_ref().and_then(|p| p.inbox.clone());
        let calls = Calls::new(limits.reach.clone(), limits.call_timeout);
        let started = calls.started();
        let state = ObjectState {
            wasi,
            table: ResourceTable::new(),
            parts,
            label,
            meter: Meter::new(&limits),
            has_alarm: code.has_alarm(),
            http: http::HttpState::new(
                crate::outbound::Caller::Class(identity.class.clone()),
                limits.reach.clone(),
                started,
            )
            .with_inbox(inbox),
            identity,
            calls,
            committer: limits.committer.clone(),
            wake_request: None,
        };
        let mut store = Store::new(code.pre.engine(), state);
        meter_store(&mut store);
        let instantiated = async {
            let instance = code
                .pre
                .instance_pre()
                .instantiate_async(&mut store)
                .await?;
            let bindings = generated::ObjectCore::new(&mut store, &instance)?;
            macro_rules! handler {
                ($index:expr, $name:literal) => {
                    optional_export(&instance, &mut store, $index, $name)?
                };
            }
            let exports = &code.exports;
            let handlers = Handlers {
                alarm: handler!(&exports.alarm, "alarm"),
                ws_message: handler!(&exports.ws_message, "websocket-message"),
                ws_close: handler!(&exports.ws_close, "websocket-close"),
                ws_error: handler!(&exports.ws_error, "websocket-error"),
                evict: handler!(&exports.evict, "evict"),
                rpc: handler!(&exports.rpc, "rpc"),
                wake: handler!(&exports.wake, "wake"),
            };
            wasmtime::Result::Ok((bindings, handlers))
        }
        .await;
        match instantiated {
            Ok((bindings, handlers)) => Ok(Self {
                store,
                bindings,
                handlers,
                limits,
            }),
            Err(error) => {
                let error = classify(&error, store.data(), &limits);
                let error = match error {
                    GuestError::Trap(reason) => GuestError::Instantiate(reason),
                    other => other,
                };
                Err((store.into_data().parts, error))
            }
        }
    }

    /// Runs the guest's `fetch`. On error the instance must not be used again.
    pub async fn fetch(&mut self, request: Request) -> Result<Response, GuestError> {
        self.start_event();
        let request = generated::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body.into(),
        };
        let outcome = self.bindings.call_fetch(&mut self.store, &request).await;
        let response = self.store.data().meter.outcome(outcome, &self.limits)?;
        Ok(Response {
            status: response.status,
            headers: response.headers,
            body: response.body.into(),
            websocket: None,
        })
    }

    /// Runs the guest's `rpc` (an RPC call of `method` with encoded `args`): the answer's status
    /// says whether the method returned or threw, its body is the encoded value (see
    /// [`rpc`]); a class without `rpc` throws a `TypeError`. On error (a trap) the
    /// instance must not be used again.
    pub async fn rpc(&mut self, method: String, args: Vec<u8>) -> Result<Response, GuestError> {
        let answer = match self.handlers.rpc {
            Some(rpc) => self.call(rpc, (method, args)).await?.0,
            None => Err(rpc::type_error(&format!(
                "the class {} has no RPC methods (its component does not export `rpc`; rebuild \
                 it with a current SDK)",
                self.store.data().identity.class
            ))),
        };
        let (status, body) = match answer {
            Ok(value) => (rpc::RETURNED, value),
            Err(thrown) => (rpc::THREW, thrown),
        };
        Ok(Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            websocket: None,
        })
    }

    /// Runs the guest's `wake` (its timers are due; ignored if not exported).
    pub async fn wake(&mut self) -> Result<(), GuestError> {
        match self.handlers.wake {
            Some(wake) => self.call(wake, ()).await,
            None => Ok(()),
        }
    }

    /// What the event that just ran asked of `timers.wake-after`: `Some(None)` withdraws the
    /// object's wake, `Some(Some(delay))` sets it, `None` leaves it as it was.
    pub fn take_wake_request(&mut self) -> Option<Option<Duration>> {
        self.store.data_mut().wake_request.take()
    }

    /// Runs the guest's `alarm`: `Ok(Err(_))` is the guest's own error (retry; the instance stays
    /// usable), `Err(_)` a trap (the instance must not be used again). Only for classes that
    /// export `alarm`.
    pub async fn alarm(&mut self, retry_count: u32) -> Result<Result<(), String>, GuestError> {
        let info = AlarmInfo {
            retry_count,
            is_retry: retry_count > 0,
        };
        match self.handlers.alarm {
            Some(alarm) => self.call(alarm, (info,)).await.map(|(outcome,)| outcome),
            None => Ok(Ok(())),
        }
    }

    /// Delivers a WebSocket message to `websocket-message` (ignored if not exported).
    pub async fn websocket_message(
        &mut self,
        id: SocketId,
        message: Message,
    ) -> Result<(), GuestError> {
        let message = to_wit_message(message);
        match self.handlers.ws_message {
            Some(handler) => self.call(handler, (id, message)).await,
            None => Ok(()),
        }
    }

    /// Tells `websocket-close` (ignored if not exported).
    pub async fn websocket_close(
        &mut self,
        id: SocketId,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> Result<(), GuestError> {
        match self.handlers.ws_close {
            Some(handler) => self.call(handler, (id, code, reason, was_clean)).await,
            None => Ok(()),
        }
    }

    /// Tells `websocket-error` (ignored if not exported).
    pub async fn websocket_error(&mut self, id: SocketId, error: String) -> Result<(), GuestError> {
        match self.handlers.ws_error {
            Some(handler) => self.call(handler, (id, error)).await,
            None => Ok(()),
        }
    }

    /// Calls an optional export as one event, under the event's limits.
    async fn call<P, R>(&mut self, func: TypedFunc<P, R>, params: P) -> Result<R, GuestError>
    where
        P: ComponentNamedList + Lower + Send + Sync + 'static,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        self.start_event();
        let outcome = func.call_async(&mut self.store, params).await;
        self.store.data().meter.outcome(outcome, &self.limits)
    }

    /// The linear memory the instance holds now (its share of the memory budget).
    pub fn memory_bytes(&self) -> usize {
        self.store.data().meter.memory.held()
    }

    /// Records which name addressed the object, for `state.name`.
    pub fn learn_name(&mut self, name: &str) {
        let state = self.store.data_mut();
        if state.identity.name.is_none() {
            state.named(name.to_string());
        }
    }

    /// Tells a shared instance that the object `id` left it: the guest drops what it kept of
    /// it. Runs with no object mounted.
    pub async fn evict(&mut self, id: ObjectId) -> Result<(), GuestError> {
        let state = self.store.data_mut();
        state.identity.id = id;
        state.identity.name = None;
        *lock(&state.label) = Some(state.identity.label());
        match self.handlers.evict {
            Some(evict) => self.call(evict, (id.to_hex(),)).await,
            None => Ok(()),
        }
    }

    /// Mounts an object in a shared instance for its event: its identity, storage and sockets.
    pub fn mount(&mut self, identity: Identity, parts: ObjectParts) {
        let state = self.store.data_mut();
        *lock(&state.label) = Some(identity.label());
        state.identity = identity;
        state.http.set_inbox(parts.inbox.clone());
        state.parts = Some(parts);
    }

    /// Takes the mounted object's parts back after its event.
    pub fn unmount(&mut self) -> Option<ObjectParts> {
        self.store.data_mut().http.set_inbox(None);
        self.store.data_mut().parts.take()
    }

    /// Lets the objects sharing this instance see when its guest waits on a call or an outgoing
    /// HTTP request.
    pub fn watch_calls(&mut self, watch: Arc<CallWatch>) {
        self.store.data_mut().http.watch_calls(watch.clone());
        self.store.data_mut().calls.watch = Some(watch);
    }

    pub fn storage(&mut self) -> &mut ObjectStorage {
        &mut self.mounted().storage
    }

    pub fn sockets(&mut self) -> &mut Sockets {
        &mut self.mounted().sockets
    }

    fn mounted(&mut self) -> &mut ObjectParts {
        self.store
            .data_mut()
            .parts
            .as_mut()
            .expect("an object is mounted while its event runs")
    }

    pub fn calls(&mut self) -> &mut Calls {
        &mut self.store.data_mut().calls
    }

    /// Drops the instance, keeping what outlives it (of the mounted object).
    pub fn into_parts(self) -> Option<ObjectParts> {
        self.store.into_data().parts
    }

    fn start_event(&mut self) {
        self.store.data_mut().wake_request = None;
        self.store.data_mut().meter.start_event(&self.limits);
        self.store.set_epoch_deadline(1);
    }
}

/// What limits one store while it runs: its memory (and its share of the budget) and the epoch
/// ticks the running event may still use.
struct Meter {
    memory: memory::MemoryGuard,
    /// Epoch ticks the current event may still run.
    ticks_left: u64,
    /// The current event ran out of ticks.
    cpu_exhausted: bool,
    /// The guest just came back from waiting on a call: the ticks that passed were not its own.
    waited: bool,
    /// The runtime's stop, and whether it cut the current event off.
    halt: Arc<AtomicBool>,
    halted: bool,
}

impl Meter {
    fn new(env: &InstanceEnv) -> Self {
        Self {
            memory: memory::MemoryGuard::new(env.memory_bytes, env.budget.clone()),
            ticks_left: ticks(env.event_cpu),
            cpu_exhausted: false,
            waited: false,
            halt: env.halt.clone(),
            halted: false,
        }
    }

    /// The CPU time the current event has left.
    fn cpu_left(&self) -> Duration {
        EPOCH_TICK.saturating_mul(u32::try_from(self.ticks_left).unwrap_or(u32::MAX))
    }

    /// Charges `spent` (time in a host call that ran on the guest's behalf, such as SQL) to the
    /// current event.
    fn charge(&mut self, spent: Duration) {
        let ticks = (spent.as_micros() / EPOCH_TICK.as_micros()) as u64;
        self.ticks_left = self.ticks_left.saturating_sub(ticks);
    }

    fn start_event(&mut self, env: &InstanceEnv) {
        self.ticks_left = ticks(env.event_cpu);
        self.cpu_exhausted = false;
        self.waited = false;
        self.halted = false;
        self.memory.hit_limit = false;
        self.memory.hit_budget = false;
    }

    /// A call's outcome under the limits: a call that returned although a growth of its memory
    /// was refused (a guest such as SpiderMonkey turns that into an exception it may catch, and
    /// keeps the memory it reached) still failed on that limit, so the instance is reset and its
    /// memory returned, as when the refusal traps.
    fn outcome<T>(&self, outcome: wasmtime::Result<T>, env: &InstanceEnv) -> Result<T, GuestError> {
        match outcome {
            Ok(_) if self.memory.hit_limit => Err(GuestError::MemoryLimit(env.memory_bytes)),
            Ok(_) if self.memory.hit_budget => Err(GuestError::MemoryBudget(env.budget.limit())),
            Ok(value) => Ok(value),
            Err(error) => Err(self.classify(&error, env)),
        }
    }

    /// Which limit a failed call ran into, or the trap it was.
    fn classify(&self, error: &wasmtime::Error, env: &InstanceEnv) -> GuestError {
        if self.halted {
            GuestError::Halted
        } else if self.cpu_exhausted {
            GuestError::CpuLimit(env.event_cpu)
        } else if self.memory.hit_limit {
            GuestError::MemoryLimit(env.memory_bytes)
        } else if self.memory.hit_budget {
            GuestError::MemoryBudget(env.budget.limit())
        } else {
            let mut text = format!("{error:#}");
            if text.len() > MAX_TRAP_TEXT {
                let cut = text.floor_char_boundary(MAX_TRAP_TEXT);
                text.truncate(cut);
            }
            GuestError::Trap(text)
        }
    }
}

/// Store data with a [`Meter`].
trait Metered: Send + 'static {
    fn meter(&mut self) -> &mut Meter;
}

impl Metered for ObjectState {
    fn meter(&mut self) -> &mut Meter {
        &mut self.meter
    }
}

/// Puts a store under its meter: the memory limiter, and an epoch callback that charges each
/// tick to the running event, interrupts it when its ticks are spent and otherwise yields.
fn meter_store<T: Metered>(store: &mut Store<T>) {
    store.limiter_async(|s| &mut s.meter().memory);
    store.epoch_deadline_callback(|mut ctx| {
        let meter = ctx.data_mut().meter();
        // A deadline that passed while the guest waited on a call: neither charged nor a reason
        // to yield (the guest has barely run since it resumed).
        if std::mem::take(&mut meter.waited) {
            return Ok(UpdateDeadline::Continue(1));
        }
        if meter.halt.load(Ordering::Relaxed) {
            meter.halted = true;
            return Ok(UpdateDeadline::Interrupt);
        }
        if meter.ticks_left == 0 {
            meter.cpu_exhausted = true;
            return Ok(UpdateDeadline::Interrupt);
        }
        meter.ticks_left -= 1;
        // Give the thread to every other ready task before running on: tokio's `yield_now`
        // re-queues the task behind them, where a plain wake-up would put it in the worker's
        // LIFO slot and run it again at once (a spinning guest then starved its neighbours).
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store.set_epoch_deadline(1);
}

fn ticks(budget: Duration) -> u64 {
    (budget.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// Longest trap description passed to callers.
const MAX_TRAP_TEXT: usize = 2048;

fn classify(error: &wasmtime::Error, state: &ObjectState, env: &InstanceEnv) -> GuestError {
    state.meter.classify(error, env)
}
