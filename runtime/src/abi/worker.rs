//! The `worker` world: the stateless front's bindings, store data and instances. A worker has no
//! storage and no identity; it reaches objects through `namespaces`. Its instances are
//! interchangeable: the runtime keeps a pool of them and gives each request its own.

use wasmtime::Store;
use wasmtime::component::{
    Component, ComponentExportIndex, HasSelf, Linker, ResourceTable, TypedFunc,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::calls::{CallError, CallSite, Calls};
use super::{GuestError, InstanceEnv, Meter, Metered, log, meter_store};
use super::{Request, Response};
use crate::ids::ClassName;

#[allow(missing_docs, clippy::all)]
mod generated {
    wasmtime::component::bindgen!({
        world: "worker",
        path: "../wit",
        // `namespaces` comes from the objects' bindings (and its async `fetch` with it).
        exports: { default: async },
        with: {
            "duro:object/types": super::super::generated::duro::object::types,
            "duro:object/namespaces": super::super::generated::duro::object::namespaces,
            "duro:object/env": super::super::generated::duro::object::env,
            "duro:object/assets": super::super::generated::duro::object::assets,
            "duro:object/timers": super::super::generated::duro::object::timers,
        },
    });
}

/// The data of one worker instance's `Store`.
pub struct WorkerState {
    wasi: WasiCtx,
    table: ResourceTable,
    meter: Meter,
    calls: Calls,
    http: super::http::HttpState,
    /// The running request asked for a `wake` after its response (`timers.wake-after`).
    wake_requested: bool,
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for WorkerState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        self.http.view(&mut self.table)
    }
}

impl Metered for WorkerState {
    fn meter(&mut self) -> &mut Meter {
        &mut self.meter
    }
}

super::calls::namespaces_host!(WorkerState);
super::calls::env_host!(WorkerState);
super::calls::assets_host!(WorkerState);

impl super::generated::duro::object::types::Host for WorkerState {}

impl super::generated::duro::object::timers::Host for WorkerState {
    fn wake_after(&mut self, delay_ms: Option<u64>) {
        self.wake_requested = delay_ms.is_some();
    }
}

impl CallSite for WorkerState {
    fn calls(&mut self) -> (&mut Calls, &mut ResourceTable) {
        (&mut self.calls, &mut self.table)
    }

    /// A worker writes nothing: its calls leave at once.
    async fn before_call(&mut self) -> wasmtime::Result<Result<(), CallError>> {
        Ok(Ok(()))
    }
}

/// Builds the linker workers are checked against: WASI p2 plus `namespaces`.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<WorkerState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    super::http::add_to_linker(&mut linker)?;
    generated::Worker::add_to_linker::<_, HasSelf<WorkerState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// A worker's code, imports resolved and exports type-checked. Cheap to clone.
#[derive(Clone)]
pub struct WorkerCode {
    pre: generated::WorkerPre<WorkerState>,
    /// The optional `wake` export (the `background-worker` world).
    wake: Option<ComponentExportIndex>,
}

impl WorkerCode {
    /// Fails with the reason when the component does not implement the `worker` world.
    pub fn new(linker: &Linker<WorkerState>, component: &Component) -> Result<Self, String> {
        let pre = linker
            .instantiate_pre(component)
            .map_err(super::link_error)?;
        let pre = generated::WorkerPre::new(pre).map_err(|e| format!("{e:#}"))?;
        let wake = component.get_export_index(None, "wake");
        Ok(Self { pre, wake })
    }
}

/// One live worker instance.
pub struct WorkerInstance {
    store: Store<WorkerState>,
    bindings: generated::Worker,
    wake: Option<TypedFunc<(), ()>>,
    env: InstanceEnv,
}

/// Longest the work a request left behind may run after its response (Cloudflare's bound on
/// `waitUntil`); then the instance is dropped.
pub const BACKGROUND_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The name worker log lines carry in place of a class.
const LOG_CLASS: &str = "worker";

impl WorkerInstance {
    pub async fn new(code: &WorkerCode, env: InstanceEnv) -> Result<Self, GuestError> {
        let mut wasi = WasiCtx::builder();
        if env.clock.is_manual() {
            wasi.wall_clock(env.clock.clone());
        }
        let class = ClassName::parse(LOG_CLASS).expect("a valid name");
        let (stdout, stderr) = log::GuestLog::streams(class, Default::default());
        let wasi = wasi.stdout(stdout).stderr(stderr).build();
        let calls = Calls::new(env.reach.clone(), env.call_timeout);
        let started = calls.started();
        let state = WorkerState {
            wasi,
            table: ResourceTable::new(),
            meter: Meter::new(&env),
            calls,
            http: super::http::HttpState::new(
                crate::outbound::Caller::Worker,
                env.reach.clone(),
                started,
            ),
            wake_requested: false,
        };
        let mut store = Store::new(code.pre.engine(), state);
        meter_store(&mut store);
        let instantiated = async {
            let instance = code
                .pre
                .instance_pre()
                .instantiate_async(&mut store)
                .await?;
            let bindings = generated::Worker::new(&mut store, &instance)?;
            let wake = super::optional_export(&instance, &mut store, &code.wake, "wake")?;
            wasmtime::Result::Ok((bindings, wake))
        }
        .await;
        match instantiated {
            Ok((bindings, wake)) => Ok(Self {
                store,
                bindings,
                wake,
                env,
            }),
            Err(error) => Err(match store.data().meter.classify(&error, &env) {
                GuestError::Trap(reason) => GuestError::Instantiate(reason),
                other => other,
            }),
        }
    }

    /// Runs the worker's `fetch`. A socket an object accepted for a forwarded upgrade comes
    /// back on a 101 response. On error the instance must not be used again.
    pub async fn fetch(&mut self, request: Request) -> Result<Response, GuestError> {
        self.store.data_mut().meter.start_event(&self.env);
        self.store.data_mut().calls.begin_event(Default::default());
        self.store.data_mut().wake_requested = false;
        self.store.set_epoch_deadline(1);
        let request = super::generated::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body.into(),
        };
        let outcome = self.bindings.call_fetch(&mut self.store, &request).await;
        let outcome = self.store.data().meter.outcome(outcome, &self.env);
        let mut forwarded = self.store.data_mut().calls.forwarded.take();
        let response = match outcome {
            Ok(response) => response,
            Err(error) => {
                if let Some(unused) = forwarded {
                    unused.never_opened().await;
                }
                return Err(error);
            }
        };
        let websocket = match response.status {
            101 => forwarded.take(),
            _ => None,
        };
        if let Some(unused) = forwarded {
            unused.never_opened().await;
        }
        Ok(Response {
            status: response.status,
            headers: response.headers,
            body: response.body.into(),
            websocket,
        })
    }
}

impl WorkerInstance {
    /// Whether the last request left work behind it (and the worker can run it: `wake`).
    pub fn has_background(&self) -> bool {
        self.wake.is_some() && self.store.data().wake_requested
    }

    /// Runs the work the last request left behind (its `wake`) until it settles, within the
    /// event limits and [`BACKGROUND_LIMIT`]. On error the instance must not be used again.
    pub async fn background(&mut self) -> Result<(), GuestError> {
        let Some(wake) = self.wake else {
            return Ok(());
        };
        self.store.data_mut().meter.start_event(&self.env);
        self.store.data_mut().calls.begin_event(Default::default());
        self.store.data_mut().wake_requested = false;
        self.store.set_epoch_deadline(1);
        let run = wake.call_async(&mut self.store, ());
        match tokio::time::timeout(BACKGROUND_LIMIT, run).await {
            Ok(outcome) => self.store.data().meter.outcome(outcome, &self.env),
            Err(_) => Err(GuestError::Trap(format!(
                "the work left after a response ran past {} s",
                BACKGROUND_LIMIT.as_secs()
            ))),
        }
    }
}
