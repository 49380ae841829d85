//! duro: a Durable Objects runtime for WebAssembly components.
//!
//! # Layout
//! - [`config`]: settings and limits. [`clock`]: the time alarms and guests see.
//! - [`ids`]: class names and object ids (`id-from-name`, `new-unique-id`, `id-from-string`).
//! - [`engine`]: wasmtime configuration, epoch ticker, compiling components (with a cache).
//! - [`abi`]: the WIT bindings, each object's store data, and [`abi::Instance`]; what an event
//!   carries (`abi::Request`, `abi::Response`); RPC calls on stubs (`abi::rpc`), which ride the
//!   event path of `fetch`; and [`abi::Reach`], the one handle through which guests' calls,
//!   vars and bindings reach the layers above (the directory implements it: `object::reach`).
//! - [`class`]: the registry of uploaded classes, persisted in storage, their migrations, the
//!   instances a JS or Python class's objects share (`class::shared`), and (in a cluster)
//!   keeping it in step with the other nodes (`class::sync`).
//! - [`deploy`]: the deploy config (`duro.jsonc`, or a wrangler file as it is: bindings,
//!   migrations, worker, outbound), and building a wrangler `main` with the JS SDK.
//! - [`object`]: the directory of live objects, the actor that runs each one's events, the
//!   reaper thread that
//!   drops retired actors (their pooled slots) off the async threads, per-object metering
//!   (`object::meter`), and, in a cluster, the forwarding of other nodes' objects' events
//!   (`object::remote`).
//! - [`alarm`]: the scheduler that fires persisted alarms.
//! - [`websocket`]: runtime-held WebSocket connections and each object's socket registry.
//! - [`worker`]: the stateless worker in front of the objects, and its pool of instances.
//! - [`assets`]: static assets (wrangler's `assets`): a folder packed into one bundle, kept by
//!   the class registry, served by the ingress before the worker and through the assets binding.
//! - [`outbound`]: outgoing HTTP — which hosts each class and the worker may fetch, and how one
//!   request is bounded (the guest side, `wasi:http`, with the output gate, is `abi::http`).
//! - [`storage`]: the seam to the engine (`storage::backend`: reads, and a sink that makes a
//!   group durable), its two engines (`storage::embedded`: redb with a write-ahead log, one
//!   machine; `storage::postgres`: cluster mode, with the shard leases and the fenced commit),
//!   the key layout (`storage::schema`), per-object storage views (each with its event's write
//!   set and its read cache), group commit (`storage::commit`), the output gate
//!   (`storage::gate`), each object's SQL database (`storage::sql`: SQLite over a VFS
//!   whose file is the object's entries), and what an operator sees of the stored objects
//!   (`storage::inspect`, `storage::sql::snapshot`; one object as JSON lines: `storage::export`,
//!   checked whole before an import writes anything: `storage::import`). SQL runs inside the
//!   event's limits: its heap counted per object (`storage::sql::heap`), its time cut off and
//!   kept off the async threads (`storage::sql::interrupt`).
//! - [`http`]: the ingress and admin listeners (who may drive the admin API, token or not:
//!   `http::guard`; the object inspector's routes in
//!   `http::inspect`, its edits in `http::edit`, export and import in `http::transfer`, metering
//!   in `http::top`, the live tail in `http::tail`, the inspector web page's files in
//!   `http::inspector`; cluster mode's internal route for forwarded events in `http::forward`);
//!   [`access`]: the access log.
//! - [`memory`]: the global allocator (mimalloc) and returning free heap to the OS.
//! - [`tail`]: the live tail's hub (requests, events, guest log lines, while someone listens).
//! - [`metrics`]: Prometheus metrics. [`cli`]: the `duro` command line (`cli::dev`: `duro dev`:
//!   build, serve, watch, swap); [`init`]: `duro init` (a new class project).
//!
//! Each layer imports only the ones below it (`tests/layers.rs` checks it): `cli` -> `deploy`,
//! `http`, `alarm` -> `object` -> `class` -> `worker`, `engine` -> `abi` -> `storage`, with
//! `config`, `ids`, `clock`, `metrics`, `outbound`, `assets`, `websocket`, `access` and `tail` beneath
//! them all.
//!
//! # The path of an event
//! 1. **Enters**: `http::ingress` parses the route once (`http::route`), answers what the static
//!    assets have (`assets`, no event), and builds an `abi::Request`; due alarms enter at `alarm::Scheduler`, WebSocket frames at
//!    `websocket::run_connection`, calls from other objects and the worker (`stub.fetch`, RPC)
//!    at `abi::calls`; a guest's due timers come back as a wake made by its actor.
//! 2. **Queued**: `object::Directory::fetch` finds or starts the object's actor and puts the event
//!    in its bounded mailbox (full: 503). In a cluster, an object of another node's shard is
//!    forwarded there first (`object::remote`, answered by `http::forward` on the owner).
//! 3. **Runs**: `object::actor` runs events one at a time through `abi::Instance` (what each kind
//!    does: `object::actor::events`); storage calls go to `storage::ObjectStorage`, SQL calls
//!    through it to the object's SQLite, whose pages join the same write set (a trap discards the
//!    event's writes and the instance). While a guest that listens on its inbox waits (the JS
//!    SDK: Cloudflare's input gate), the actor hands it the object's next events there
//!    (`object::actor::mail`, `abi::inbox`) to run beside the waiting one, each answered once
//!    its writes so far are durable.
//! 4. **Commits**: the event's writes go to `storage::Committer`, which hands the writes of many
//!    objects to the engine's sink as one group: one record of the write-ahead log
//!    (`storage::embedded::wal`, one fdatasync) applied in one redb transaction, or one fenced
//!    PostgreSQL transaction (`storage::postgres::sink`). The actor goes on with its next event;
//!    its `storage::OutputGate` follows the commit.
//! 5. **Leaves**: the response is a `storage::Gated` output; `Directory::fetch` releases it only
//!    once its commit is durable. WebSocket messages wait in the object's gate for the same.

pub mod abi;
pub mod access;
pub mod alarm;
pub mod assets;
pub mod class;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deploy;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod ids;
pub mod init;
#[cfg(test)]
mod layers;
pub mod memory;
pub mod metrics;
pub mod object;
pub mod outbound;
pub mod storage;
pub mod tail;
pub mod websocket;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

pub use config::{Config, Limits};

use crate::class::Classes;
use crate::engine::Engine;
use crate::http::admin::AdminState;
use crate::metrics::Metrics;
use crate::object::Directory;
use crate::storage::Committer;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot use data dir {path}: {cause}")]
    DataDir {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Database(#[from] redb::Error),
    #[error(
        "the data dir {0} is in use by another duro (its database is locked): stop that one, \
         or give this one another --data-dir"
    )]
    DataDirInUse(std::path::PathBuf),
    #[error(transparent)]
    Log(#[from] storage::RecoverError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("cannot load classes: {0}")]
    Classes(#[from] class::ClassError),
    #[error("cannot listen on {addr}: {cause}{}", listen_hint(cause))]
    Listen {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("cannot start the storage writer: {0}")]
    Committer(std::io::Error),
    #[error("cluster mode: {0}")]
    Cluster(String),
}

/// A running runtime. Dropping it without `shutdown` leaves it running until the process ends.
pub struct Server {
    ingress_addr: SocketAddr,
    admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// Turns true when the ingress may serve (see `start_closed`).
    open: watch::Sender<bool>,
    /// What the ingress serves with, set by `open_ingress` (until then: 503, starting).
    ingress_ready: Arc<std::sync::OnceLock<http::ingress::IngressState>>,
    ingress_state: http::ingress::IngressState,
    listeners: Vec<JoinHandle<()>>,
    /// How long a stop lets open requests and running events finish.
    drain_timeout: std::time::Duration,
    directory: Directory,
    actors: object::ActorsStopped,
    committer: storage::CommitterThread,
    classes: Arc<Classes>,
    metrics: Arc<Metrics>,
    /// In a cluster: turns `Some(reason)` when this node loses its lease.
    lease_lost: Option<watch::Receiver<Option<String>>>,
    /// In a cluster: the lease this node keeps, handed over at shutdown.
    lease: Option<storage::postgres::lease::Held>,
    _idle_workers: IdleWorkers,
}

/// Drops the worker's idle instances when the server goes, stopped or just dropped: an idle
/// instance holds the class registry, which holds the worker's pool — a cycle that would keep the
/// engine (and its pooled memory and stacks) alive after the server.
struct IdleWorkers(Arc<Classes>);

impl Drop for IdleWorkers {
    fn drop(&mut self) {
        if let Some(worker) = self.0.worker() {
            worker.drop_idle();
        }
    }
}

/// Opens the data dir, loads the classes and starts both listeners.
/// What to do about a listen error people meet often.
fn listen_hint(cause: &std::io::Error) -> &'static str {
    match cause.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process holds this port: stop it, or choose another with --listen or \
             --admin-listen)"
        }
        std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
        _ => "",
    }
}

/// Locks a std mutex whose data stays consistent even if a holder panicked (every holder only
/// swaps, pushes or takes whole values), so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `done()` holds, checking again at every `notify_waiters` of `notify` (armed
/// before each check, so no wake is missed).
pub(crate) async fn wait_until(notify: &tokio::sync::Notify, mut done: impl FnMut() -> bool) {
    loop {
        let notified = notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return;
        }
        notified.await;
    }
}

pub async fn start(config: Config) -> Result<Server, StartError> {
    let server = start_closed(config).await?;
    server.open_ingress();
    Ok(server)
}

/// Like [`start`], with the ingress answering 503 (`Retry-After`) until [`Server::open_ingress`]:
/// a deploy config applied meanwhile is in place before the first request is routed (clients
/// that connect early are told to come back, instead of getting 404 for classes not deployed
/// yet or waiting through a compile).
pub async fn start_closed(config: Config) -> Result<Server, StartError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|cause| StartError::DataDir {
        path: config.data_dir.clone(),
        cause,
    })?;
    // Bound first: a cluster node tells the others its internal (admin) address.
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|cause| StartError::Listen { addr, cause })
    };
    let ingress = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    let local = |l: &TcpListener, addr| {
        l.local_addr()
            .map_err(|cause| StartError::Listen { addr, cause })
    };
    let ingress_addr = local(&ingress, config.listen)?;
    let admin_addr = local(&admin, config.admin_listen)?;
    let metrics = Arc::new(Metrics::new());
    let alarm_wake = alarm::AlarmWake::default();
    let parts = match &config.cluster {
        None => open_redb(&config, &metrics)?,
        Some(cluster) => open_postgres(cluster.clone(), admin_addr).await?,
    };
    let store = parts.store;

    // Both listeners answer from here on (the storage is open, a cluster node has joined): until
    // the server is ready the ingress answers 503 with Retry-After and the admin API its health,
    // instead of holding clients in the listen backlog through a long compile. Dropping `stop`
    // (a failed start) ends them.
    let (stop, stopped) = watch::channel(false);
    let listening = |max_connections: usize| http::Listening {
        header_timeout: config.http.header_timeout,
        connections: Arc::new(Semaphore::new(max_connections)),
        drain_timeout: config.http.drain_timeout,
        metrics: metrics.clone(),
    };
    // The admin listener's connections: its API's, and the live tails' beside them.
    let admin_connections = config.http.max_admin_connections + http::tail::MAX_TAILS;
    let ingress_listening = listening(http::connection_cap(
        config.http.max_connections,
        admin_connections,
    ));
    let ingress_connections = ingress_listening.connections.clone();
    let ingress_ready: Arc<std::sync::OnceLock<http::ingress::IngressState>> = Arc::default();
    let ingress_task = tokio::spawn({
        let ready = ingress_ready.clone();
        http::serve(
            ingress,
            move |request| http::ingress::handle_when_ready(ready.clone(), request),
            stopped.clone(),
            ingress_listening,
        )
    });
    let (admin_ready, admin_readied) = watch::channel(None);
    let admin_task = tokio::spawn(http::serve(
        admin,
        move |request| http::admin::handle_when_ready(admin_readied.clone(), request),
        stopped.clone(),
        listening(admin_connections),
    ));

    // The data dir is this server's now (redb's lock): what a stop left half-staged goes.
    http::admin::sweep_staged(&config.data_dir);
    let (committer, committer_thread) =
        Committer::start(parts.sink, metrics.clone(), alarm_wake.notify())
            .map_err(StartError::Committer)?;
    let engine = Arc::new(Engine::new(
        &config.cache_dir(),
        &config.limits,
        metrics.clone(),
    )?);
    let classes = Arc::new(
        Classes::open(
            &store,
            engine,
            committer.clone(),
            config.limits.max_live_objects,
        )
        .await?,
    );
    let remote = parts.lease.as_ref().map(|held| {
        let wait = config
            .cluster
            .as_ref()
            .map_or(std::time::Duration::ZERO, |c| c.lease_ttl * 3);
        let token = config.admin_token.as_deref().map(Arc::from);
        object::remote::Remote::new(held.map().clone(), token, wait)
    });
    let (directory, actors) = Directory::new(
        classes.clone(),
        committer.clone(),
        store.clone(),
        &config,
        metrics.clone(),
        remote,
    );

    let ingress_state = http::ingress::IngressState {
        directory: directory.clone(),
        max_body: config.limits.max_request_body_bytes,
        body_timeout: config.http.body_timeout,
        max_ws_message: config.limits.max_ws_message_bytes,
        client_location: config.client_location,
        connections: ingress_connections,
        stop: stopped.clone(),
    };
    let (open, _) = watch::channel(false);
    let lease_lost = parts.lease.as_ref().map(|held| held.fence().watch());
    let alarm_notify = alarm_wake.notify();
    let scheduler = alarm::Scheduler {
        db: store.clone(),
        directory: directory.clone(),
        classes: classes.clone(),
        committer,
        policy: config.alarm_retry,
        wake: alarm_wake,
        metrics: metrics.clone(),
        clock: config.clock.clone(),
    };
    let scheduler_task = tokio::spawn(scheduler.run(stopped.clone()));

    let admin_state = AdminState {
        classes: classes.clone(),
        directory: directory.clone(),
        db: store,
        data_dir: config.data_dir.clone(),
        metrics: metrics.clone(),
        token: config.admin_token.as_deref().map(Arc::from),
        tails: Arc::default(),
        hosts: Arc::new(http::guard::AllowedHosts::new(
            &config.admin_hosts,
            config.cluster.as_ref().and_then(|c| c.advertise.as_deref()),
        )),
        limits: config.limits.clone(),
        body_timeout: config.http.body_timeout,
        ready: open.subscribe(),
        ingress: ingress_state.clone(),
    };
    admin_ready.send_replace(Some(admin_state));
    let (registry_stopped, map_stopped) = (stopped.clone(), stopped);
    let mut listeners = vec![ingress_task, admin_task, scheduler_task];
    if let Some(lease) = &parts.lease {
        listeners.push(tokio::spawn(follow_registry(
            classes.clone(),
            registry_stopped,
        )));
        listeners.push(tokio::spawn(follow_shards(
            lease.clone(),
            directory.clone(),
            alarm_notify,
            map_stopped,
        )));
    }
    tracing::info!(%ingress_addr, %admin_addr, data_dir = %config.data_dir.display(), "duro serving");
    Ok(Server {
        ingress_addr,
        admin_addr,
        stop,
        open,
        ingress_ready,
        ingress_state,
        listeners,
        drain_timeout: config.http.drain_timeout,
        directory,
        actors,
        committer: committer_thread,
        _idle_workers: IdleWorkers(classes.clone()),
        classes,
        metrics,
        lease_lost,
        lease: parts.lease,
    })
}

/// Cluster mode: installs the class registry's changes made on other nodes, every second, until
/// `stop` turns true.
async fn follow_registry(classes: Arc<Classes>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if let Err(error) = classes.refresh().await {
            tracing::warn!(%error, "could not install the class registry's changes; retrying");
        }
    }
}

/// Cluster mode: acts on changes of the shard map until `stop` turns true. Alarms of shards
/// this node takes over are due here now (the scheduler looks again); shards this node hands
/// over are drained (their objects evicted, their commits durable), then released.
async fn follow_shards(
    lease: storage::postgres::lease::Held,
    directory: Directory,
    alarms: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    use storage::postgres::lease::shard_of_id;
    let map = lease.map().clone();
    loop {
        tokio::select! {
            () = map.changed() => alarms.notify_one(),
            // Also now and then: a hand-over that failed is tried again.
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let leaving = map.leaving();
        if leaving.is_empty() {
            continue;
        }
        let drain = std::time::Duration::from_secs(10);
        if !directory
            .evict_where(|id| leaving.contains(&shard_of_id(id)), drain)
            .await
        {
            // An object still commits: its shard stays until the next try.
            tracing::warn!("objects of shards to hand over are still busy; trying again");
            continue;
        }
        let lease = lease.clone();
        let _ = tokio::task::spawn_blocking(move || lease.hand_over(&leaving)).await;
    }
}

/// The engine a server runs on: its reads, its sink and, in a cluster, its fence.
struct Opened {
    store: storage::Store,
    sink: Box<dyn storage::Sink>,
    lease: Option<storage::postgres::lease::Held>,
}

/// The data dir's redb database, after replaying its write-ahead log.
fn open_redb(config: &Config, metrics: &Arc<Metrics>) -> Result<Opened, StartError> {
    let db = storage::open(&config.data_dir).map_err(|error| match error {
        redb::Error::DatabaseAlreadyOpen => StartError::DataDirInUse(config.data_dir.clone()),
        other => other.into(),
    })?;
    let recovery = storage::Log::open(
        &config.data_dir,
        &db,
        config.durable_commits,
        config.accept_log_damage,
    )?;
    if let Some(damage) = &recovery.accepted_damage {
        tracing::warn!(%damage, replayed = recovery.replayed_groups, "started on a damaged write-ahead log (--accept-log-damage): what could not be read is lost");
    }
    if let Some(torn) = &recovery.dropped {
        tracing::warn!(%torn, "dropped the incomplete last record of the write-ahead log");
    }
    if recovery.replayed_groups > 0 {
        tracing::info!(
            groups = recovery.replayed_groups,
            "replayed the write-ahead log after an unclean stop"
        );
    }
    metrics.log_replayed_groups.inc_by(recovery.replayed_groups);
    let sink = storage::embedded::sink::RedbSink::new(
        db.clone(),
        recovery.log,
        config.checkpoint_interval,
        metrics.clone(),
    );
    Ok(Opened {
        store: Arc::new(storage::Redb(db)),
        sink: Box::new(sink),
        lease: None,
    })
}

/// Cluster mode: connects to PostgreSQL, joins, and claims this node's first shards (every
/// shard on a new cluster); `admin` is where other nodes forward requests to this one.
async fn open_postgres(cluster: config::Cluster, admin: SocketAddr) -> Result<Opened, StartError> {
    use storage::postgres::{Pg, Postgres, lease, sink::PgSink};
    let address = cluster
        .advertise
        .clone()
        .unwrap_or_else(|| admin.to_string());
    let opened = tokio::task::spawn_blocking(move || {
        let pg = Pg::connect(&cluster.url)?;
        let lease = lease::Lease::join(
            pg.clone(),
            lease::LeaseConfig {
                node: cluster.node,
                address,
                ttl: cluster.lease_ttl,
            },
        )?;
        let held = lease.start()?;
        let sink = PgSink::new(pg.clone(), held.fence().clone())?;
        Ok::<_, storage::BackendError>(Opened {
            store: Arc::new(Postgres(pg)),
            sink: Box::new(sink),
            lease: Some(held),
        })
    })
    .await
    .map_err(|e| StartError::Cluster(e.to_string()))?;
    opened.map_err(|e| StartError::Cluster(e.to_string()))
}

impl Server {
    /// Starts serving the ingress (see [`start_closed`]); again, nothing happens.
    pub fn open_ingress(&self) {
        let _ = self.ingress_ready.set(self.ingress_state.clone());
        if !self.open.send_replace(true) {
            let classes = self.classes.list().len();
            let worker = self.classes.worker().is_some();
            tracing::info!(
                classes,
                worker,
                "ready: the ingress serves what is deployed"
            );
        }
    }

    pub fn ingress_addr(&self) -> SocketAddr {
        self.ingress_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Resolves, with the reason, when this node loses its cluster lease (never outside a
    /// cluster). The node must then stop at once: another node may be running its objects.
    pub async fn lease_lost(&self) -> String {
        let Some(mut lost) = self.lease_lost.clone() else {
            return std::future::pending().await;
        };
        match lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// The class registry (uploads, deletes, migrations) in-process.
    pub fn classes(&self) -> &Arc<class::Classes> {
        &self.classes
    }

    /// Creates or replaces a class in-process, as `PUT /classes/{class}` does.
    pub async fn deploy(
        &self,
        class: ids::ClassName,
        component: bytes::Bytes,
    ) -> Result<class::ClassInfo, class::ClassError> {
        self.classes
            .put(class, component)
            .await
            .map(|(info, _)| info)
    }

    /// Stops accepting, finishes in-flight requests and events, commits what is queued, and
    /// closes the database.
    pub async fn shutdown(self) {
        // Whatever a guest is doing, the stop ends within its drain time: then every running
        // guest and SQL statement is cut off (their events fail, their writes are discarded).
        let halting = self.directory.halt();
        let drain = self.drain_timeout;
        let halt = tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            tracing::info!("still stopping after the drain timeout: cutting running guests off");
            halting.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        if let Some(lease) = &self.lease {
            // A cluster node first hands its objects over while it still answers its peers
            // (421: not here), then waits two ticks so that they see the new owners (and stop
            // sending here) before its listeners close.
            lease.leave();
            let drained = self
                .directory
                .evict_where(|_| true, std::time::Duration::from_secs(10))
                .await;
            if !drained {
                tracing::warn!("objects still busy after 10 s; handing their shards over anyway");
            }
            let (handing, leaving) = (lease.clone(), lease.map().leaving());
            let _ = tokio::task::spawn_blocking(move || handing.hand_over(&leaving)).await;
            tokio::time::sleep(lease.tick() * 2).await;
        }
        let _ = self.stop.send(true);
        for listener in self.listeners {
            let _ = listener.await;
        }
        self.directory.shutdown();
        drop(self._idle_workers);
        // Everything that holds the directory goes before the wait for its actors (it holds
        // their count open).
        drop(self.ingress_state);
        drop(self.ingress_ready);
        drop(self.directory);
        drop(self.classes);
        self.actors.wait().await;
        let committer = self.committer;
        let _ = tokio::task::spawn_blocking(move || committer.join()).await;
        if let Some(lease) = self.lease {
            let _ = tokio::task::spawn_blocking(move || lease.release()).await;
        }
        halt.abort();
        tracing::info!("duro stopped");
    }
}
