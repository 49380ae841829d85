//! `duro serve`: its flags, the server config they make, and running the server until a signal
//! (or, in a cluster, the loss of this node's lease).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::shutdown_signal;
use crate::config::{Config, HttpLimits, Limits};
use crate::deploy::DeployConfig;
use crate::ids::ClassName;

#[derive(Args)]
pub(super) struct ServeArgs {
    /// Folder for the database and the compiled-component cache.
    #[arg(long, env = "DURO_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Folder for the compiled-component cache (default: DATA_DIR/compiled); servers may share one.
    #[arg(long, env = "DURO_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Ingress address (objects).
    #[arg(long, env = "DURO_LISTEN", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Admin address (classes, health, metrics).
    #[arg(long, env = "DURO_ADMIN_LISTEN", default_value = "127.0.0.1:8788")]
    admin_listen: SocketAddr,
    /// Bearer token the admin API requires (required for a non-loopback admin address).
    #[arg(long, env = "DURO_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// A host name the admin API answers to, beside IP addresses and `localhost` (repeat it;
    /// `.example.com` allows its subdomains; `*` any name, only with a token).
    #[arg(
        long = "admin-host",
        env = "DURO_ADMIN_HOSTS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    admin_hosts: Vec<String>,
    /// Where `request.cf` says a client is: `unknown` (`duro serve`'s default), `placeholder`
    /// (Austin, Texas, as `wrangler dev` gives; `duro dev`'s default) or `headers` (Cloudflare's
    /// visitor location headers, `cf-ipcountry` …, set by a Cloudflare proxy in front of duro).
    #[arg(long, env = "DURO_CLIENT_LOCATION", value_name = "FROM")]
    pub(super) client_location: Option<crate::config::ClientLocation>,
    /// Deploy these `CLASS=FILE.wasm` at start (as `duro deploy` would).
    #[arg(long = "deploy", value_name = "CLASS=FILE")]
    deploy: Vec<String>,
    /// Apply this deploy config at start (its migrations, then its bindings), before `--deploy`.
    #[arg(long, env = "DURO_CONFIG", value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Log one line per ingress request (method, path, status, milliseconds; target
    /// `duro::access`).
    #[arg(long, env = "DURO_ACCESS_LOG")]
    pub(super) access_log: bool,
    /// Drop an object's instance after this many idle milliseconds.
    #[arg(long, env = "DURO_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    idle_timeout_ms: u64,
    /// CPU time one event may use, in milliseconds.
    #[arg(long, env = "DURO_EVENT_CPU_MS", default_value_t = 30_000)]
    event_cpu_ms: u64,
    /// How long an object's timers and `waitUntil` work may keep it in memory after its last
    /// event from outside, in milliseconds (Cloudflare's 15 minutes).
    #[arg(long, env = "DURO_BACKGROUND_LIMIT_MS", default_value_t = 900_000)]
    background_limit_ms: u64,
    /// How long an object waits behind a mate's one event in a shared instance (JS, Python)
    /// before it moves to another instance, starting over in memory, in milliseconds.
    #[arg(long, env = "DURO_MATE_WAIT_MS", default_value_t = 50)]
    mate_wait_ms: u64,
    /// Linear memory one instance may use, in MiB.
    #[arg(long, env = "DURO_INSTANCE_MEMORY_MIB", default_value_t = 128)]
    instance_memory_mib: usize,
    /// Largest ingress request body, in bytes.
    #[arg(long, env = "DURO_MAX_BODY_BYTES", default_value_t = Limits::default().max_request_body_bytes)]
    max_body_bytes: usize,
    /// Most objects live at once.
    #[arg(long, env = "DURO_MAX_LIVE_OBJECTS", default_value_t = Limits::default().max_live_objects)]
    max_live_objects: usize,
    /// How long an object whose only activity is open WebSockets keeps its instance, in ms.
    #[arg(long, env = "DURO_HIBERNATE_AFTER_MS", default_value_t = 10_000)]
    hibernate_after_ms: u64,
    /// Largest WebSocket message, in bytes.
    #[arg(long, env = "DURO_MAX_WS_MESSAGE_BYTES", default_value_t = Limits::default().max_ws_message_bytes)]
    max_ws_message_bytes: usize,
    /// Delay before the first retry of a failed alarm, in milliseconds (doubling after).
    #[arg(long, env = "DURO_ALARM_RETRY_BASE_MS", default_value_t = 2_000)]
    alarm_retry_base_ms: u64,
    /// How often the database file is made durable so the write-ahead log can start over, in ms.
    #[arg(long, env = "DURO_CHECKPOINT_INTERVAL_MS", default_value_t = 1_000)]
    checkpoint_interval_ms: u64,
    /// Linear memory all live instances may hold together, in MiB (default: the machine's
    /// physical memory). Past it idle objects are evicted, then events fail with 503.
    #[arg(long, env = "DURO_MEMORY_BUDGET_MIB")]
    memory_budget_mib: Option<usize>,
    /// Largest response body an object may return, in bytes.
    #[arg(long, env = "DURO_MAX_RESPONSE_BYTES", default_value_t = Limits::default().max_response_body_bytes)]
    max_response_bytes: usize,
    /// Most bytes (keys + values) one event may write.
    #[arg(long, env = "DURO_MAX_EVENT_WRITE_BYTES", default_value_t = Limits::default().max_event_write_bytes)]
    max_event_write_bytes: usize,
    /// Most bytes of WebSocket messages one event may send.
    #[arg(long, env = "DURO_MAX_EVENT_OUTBOX_BYTES", default_value_t = Limits::default().max_event_outbox_bytes)]
    max_event_outbox_bytes: usize,
    /// Most WebSockets one object may hold open.
    #[arg(long, env = "DURO_MAX_SOCKETS_PER_OBJECT", default_value_t = Limits::default().max_sockets_per_object)]
    max_sockets_per_object: usize,
    /// Time a client has to send request headers, and an idle keep-alive connection's life, in ms.
    #[arg(long, env = "DURO_HEADER_TIMEOUT_MS", default_value_t = 20_000)]
    header_timeout_ms: u64,
    /// Time a client has to send a whole request body, in ms.
    #[arg(long, env = "DURO_BODY_TIMEOUT_MS", default_value_t = 60_000)]
    body_timeout_ms: u64,
    /// Open ingress connections (WebSockets included); more are answered 503. Lowered to what
    /// the file descriptor limit can hold, with a warning.
    #[arg(long, env = "DURO_MAX_CONNECTIONS", default_value_t = HttpLimits::default().max_connections)]
    max_connections: usize,
    /// Open admin connections (a budget of their own).
    #[arg(long, env = "DURO_MAX_ADMIN_CONNECTIONS", default_value_t = HttpLimits::default().max_admin_connections)]
    max_admin_connections: usize,
    /// How long a call to an object (from an object or the worker) waits for its answer, in ms.
    #[arg(long, env = "DURO_CALL_TIMEOUT_MS", default_value_t = 30_000)]
    call_timeout_ms: u64,
    /// How long shutdown waits for open requests before closing their connections, in ms.
    #[arg(long, env = "DURO_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    drain_timeout_ms: u64,
    /// Cluster mode: keep objects in this PostgreSQL database (`postgres://user@host:port/db`)
    /// instead of the data dir's redb. Nodes on the same database share the objects: each runs
    /// the objects of its shards and forwards the others' requests; a failed node's shards move
    /// to the others when its lease expires.
    #[arg(long, env = "DURO_CLUSTER")]
    cluster: Option<String>,
    /// This node's name in the cluster (default: the ingress address).
    #[arg(long, env = "DURO_NODE")]
    node: Option<String>,
    /// How long a node's cluster lease lasts without a heartbeat, in ms: a failed active node's
    /// objects move to a standby after it.
    #[arg(long, env = "DURO_LEASE_TTL_MS", default_value_t = 10_000)]
    lease_ttl_ms: u64,
    /// Where other cluster nodes reach this node's admin listener, to forward it the requests
    /// for its objects (default: the admin listen address; give a routable host:port when
    /// listening on 0.0.0.0). Nodes authenticate with the admin token.
    #[arg(long, env = "DURO_ADVERTISE")]
    advertise: Option<String>,
    /// Start even if the write-ahead log is damaged, missing or belongs to another database:
    /// replay what can be read and LOSE the rest. Without it such a start is refused.
    #[arg(long)]
    accept_log_damage: bool,
    /// Do not fdatasync the write-ahead log per group (redb is still made durable at every
    /// checkpoint): a power loss may lose a checkpoint interval of acknowledged writes, a crash
    /// of the process loses none. Breaks the durability guarantee; for benchmarks only.
    #[arg(long)]
    unsafe_no_fsync: bool,
}

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = server_config(&args)?;
    let rejoining = std::env::var(REJOINING).ok().map(|value| {
        // Where the incarnation before this one listened (its ports, when the flags said 0),
        // and how many attempts to rejoin came before this one.
        let mut fields = value.split(' ');
        let mut address = || fields.next().and_then(|a| a.parse().ok());
        if let (Some(ingress), Some(admin)) = (address(), address()) {
            (config.listen, config.admin_listen) = (ingress, admin);
        }
        fields
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    let deploys = args
        .deploy
        .iter()
        .map(|pair| parse_deploy(pair))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let deploy_config = match args.config.as_deref() {
        Some(path) => Some(DeployConfig::open(path).await?),
        None => None,
    };

    let drain = config.http.drain_timeout;
    // The ingress serves once what the flags deploy is in place.
    let server = match rejoining {
        None => crate::start_closed(config).await?,
        Some(attempt) => rejoin(config, attempt).await,
    };
    if let Some(deploy_config) = deploy_config {
        match deploy_config.apply(server.classes().as_ref()).await {
            Ok(report) => report.iter().for_each(|line| tracing::info!("{line}")),
            Err(error) => {
                server.shutdown().await;
                return Err(error.context("applying the deploy config"));
            }
        }
    }
    for (class, path) in deploys {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let info = server
            .deploy(class.clone(), bytes.into())
            .await
            .with_context(|| format!("deploying {class} from {}", path.display()))?;
        tracing::info!(class = %info.class, sha256 = %info.sha256, "deployed");
    }
    let stop = shutdown_signal();
    server.open_ingress();
    // Machine-readable: tests and scripts read these two lines (a reader gone is no error).
    {
        use std::io::Write;
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "ingress: http://{}", server.ingress_addr());
        let _ = writeln!(stdout, "admin: http://{}", server.admin_addr());
    }
    tokio::select! {
        () = stop => {}
        reason = server.lease_lost() => {
            // Another node may run this node's objects now: stop at once, committing and
            // answering nothing more (a graceful shutdown would try to), and start over.
            eprintln!("error: this node lost its cluster lease ({reason}); starting over");
            start_over(server.ingress_addr(), server.admin_addr(), 0);
        }
    }
    tracing::info!("shutting down");
    // Running guests are cut off at the drain timeout; whatever else holds the stop (a call out
    // that never answers, a database that does not) gets 20 s more. Every acknowledged write
    // is durable already: exiting loses none.
    if tokio::time::timeout(drain + STOP_GRACE, server.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "error: the stop outlived its drain timeout by {} s; exiting",
            STOP_GRACE.as_secs()
        );
        std::process::exit(1);
    }
    Ok(())
}

/// How long a graceful stop may take beyond the drain timeout before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Set for a node that starts over after losing its lease: the addresses its listeners had
/// (it listens on them again) and the attempts to rejoin so far.
const REJOINING: &str = "DURO_REJOINING";

/// A node that lost its lease starts over in place: it executes itself again with the same
/// arguments (same process id; every connection, every object in memory, every queued write
/// and every task — a lease being kept — gone, as after a crash, which storage is built to
/// survive), and joins again as a new incarnation on the same addresses once PostgreSQL
/// answers. No supervisor is needed; if the exec fails, the process exits with status 3 for one
/// to restart it.
fn start_over(ingress: SocketAddr, admin: SocketAddr, attempt: u32) -> ! {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new("/proc/self/exe");
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    let error = command
        .args(args)
        .env(REJOINING, format!("{ingress} {admin} {attempt}"))
        .exec();
    eprintln!("error: cannot start over ({error}); exiting");
    std::process::exit(3);
}

/// Starts a node that lost its lease. It listens only once PostgreSQL answers (until then it is
/// fenced: connections are refused); an attempt that fails after that (it may have joined, and
/// its lease is kept by a task of its own) starts over again rather than retry in this process.
async fn rejoin(config: Config, attempt: u32) -> crate::Server {
    let started = std::time::Instant::now();
    if let Some(cluster) = &config.cluster {
        let mut said = None::<std::time::Instant>;
        loop {
            let url = cluster.url.clone();
            let probe = tokio::task::spawn_blocking(move || {
                crate::storage::postgres::Pg::connect(&url).map(drop)
            });
            match probe.await {
                Ok(Ok(())) => break,
                Ok(Err(error)) => {
                    if said.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(%error, "waiting for PostgreSQL to rejoin the cluster");
                        said = Some(std::time::Instant::now());
                    }
                }
                Err(error) => tracing::warn!(%error, "probing PostgreSQL failed"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let (ingress, admin) = (config.listen, config.admin_listen);
    match crate::start_closed(config).await {
        Ok(server) => {
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                attempt,
                "rejoined the cluster as a new incarnation"
            );
            server
        }
        Err(error) => {
            tracing::warn!(%error, attempt, "rejoining the cluster failed; starting over");
            tokio::time::sleep(Duration::from_secs(1)).await;
            start_over(ingress, admin, attempt + 1)
        }
    }
}

/// The server's config from the `serve` flags, checked.
pub(super) fn server_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::new(&args.data_dir);
    config.cache_dir = args.cache_dir.clone();
    config.listen = args.listen;
    config.admin_listen = args.admin_listen;
    config.admin_token = args.admin_token.clone();
    config.admin_hosts = args.admin_hosts.clone();
    config.client_location = args.client_location.unwrap_or_default();
    config.idle_timeout = Duration::from_millis(args.idle_timeout_ms);
    config.durable_commits = !args.unsafe_no_fsync;
    config.checkpoint_interval = Duration::from_millis(args.checkpoint_interval_ms);
    config.accept_log_damage = args.accept_log_damage;
    config.call_timeout = Duration::from_millis(args.call_timeout_ms);
    config.cluster = args.cluster.as_ref().map(|url| crate::config::Cluster {
        url: url.clone(),
        node: args.node.clone().unwrap_or_else(|| args.listen.to_string()),
        lease_ttl: Duration::from_millis(args.lease_ttl_ms),
        advertise: args.advertise.clone(),
    });
    config.alarm_retry.base = Duration::from_millis(args.alarm_retry_base_ms);
    config.hibernate_after = Duration::from_millis(args.hibernate_after_ms);
    let limits = &mut config.limits;
    limits.max_ws_message_bytes = args.max_ws_message_bytes;
    limits.event_cpu = Duration::from_millis(args.event_cpu_ms);
    limits.background = Duration::from_millis(args.background_limit_ms);
    limits.mate_wait = Duration::from_millis(args.mate_wait_ms);
    limits.instance_memory_bytes = mib(args.instance_memory_mib);
    if let Some(budget) = args.memory_budget_mib {
        limits.memory_budget_bytes = mib(budget);
    }
    limits.max_request_body_bytes = args.max_body_bytes;
    limits.max_response_body_bytes = args.max_response_bytes;
    limits.max_event_write_bytes = args.max_event_write_bytes;
    limits.max_event_outbox_bytes = args.max_event_outbox_bytes;
    limits.max_sockets_per_object = args.max_sockets_per_object;
    limits.max_live_objects = args.max_live_objects;
    config.http = HttpLimits {
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        body_timeout: Duration::from_millis(args.body_timeout_ms),
        max_connections: args.max_connections,
        max_admin_connections: args.max_admin_connections,
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
    };
    config.validate()?;
    Ok(config)
}

/// MiB to bytes; an overflow saturates, and `Config::validate` refuses it by name.
fn mib(value: usize) -> usize {
    value.saturating_mul(1024 * 1024)
}

pub(super) fn parse_deploy(pair: &str) -> anyhow::Result<(ClassName, PathBuf)> {
    let Some((class, path)) = pair.split_once('=') else {
        bail!("expected CLASS=FILE.wasm, got {pair:?}");
    };
    Ok((ClassName::parse(class)?, PathBuf::from(path)))
}
