//! The runtime's settings: addresses, data dir, timeouts and every limit, typed and with units,
//! and the one place they are checked.
//!
//! `cli` fills a [`Config`] from flags and environment; embedders (the tests) build one directly.
//! Either way [`Config::validate`] runs at start and names the flag of a bad value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder holding `duro.redb` and (unless `cache_dir` says otherwise) the compiled-component
    /// cache.
    pub data_dir: PathBuf,
    /// Where compiled components are cached (`--cache-dir`); `None`: `{data_dir}/compiled`. Servers
    /// may share one: entries are named by the component's digest and the engine's settings.
    pub cache_dir: Option<PathBuf>,
    /// Ingress listener (objects).
    pub listen: SocketAddr,
    /// Admin listener (classes, health, metrics).
    pub admin_listen: SocketAddr,
    /// Bearer token required by the admin API, if set. Never empty (see [`Config::validate`]).
    pub admin_token: Option<String>,
    /// Host names the admin API answers to beside IP addresses, `localhost` and the cluster's
    /// advertised address (`--admin-host`; `*`: any, only with a token). Other names are
    /// refused: a web page's DNS name pointed at the listener must not reach it.
    pub admin_hosts: Vec<String>,
    /// Where `request.cf` says a client is.
    pub client_location: ClientLocation,
    pub limits: Limits,
    /// How long a live object may sit without events before its instance is dropped.
    pub idle_timeout: Duration,
    /// How long an object whose only activity is open WebSockets keeps its instance.
    pub hibernate_after: Duration,
    /// How failed alarms are retried.
    pub alarm_retry: RetryPolicy,
    /// Whether each group's log record is fdatasynced before its outputs leave. Only benchmarks
    /// turn this off (checkpoints still sync redb); every guarantee of the output gate assumes
    /// it is on.
    pub durable_commits: bool,
    /// How often the group committer makes redb's file durable, so that the write-ahead log can
    /// start over (and a restart after a crash replays at most this much).
    pub checkpoint_interval: Duration,
    /// Start even when the write-ahead log is damaged, missing or foreign, replaying what can be
    /// read and losing the rest (`--accept-log-damage`). Off: such a start is refused.
    pub accept_log_damage: bool,
    /// Connection handling of both listeners.
    pub http: HttpLimits,
    /// The time alarms and guests see: the system clock, or a manual one in tests.
    pub clock: crate::clock::Clock,
    /// How long a call to an object (from another object or the worker) waits for its answer.
    pub call_timeout: Duration,
    /// Cluster mode (`--cluster`): objects live in PostgreSQL instead of the data dir's redb.
    pub cluster: Option<Cluster>,
}

/// Where a cluster keeps its objects and how this node takes part (`--cluster`, `--node`).
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The PostgreSQL connection string (`postgres://user@host:port/db` or `host=... dbname=...`).
    pub url: String,
    /// This node's name, unique in the cluster.
    pub node: String,
    /// How long a node's lease lasts without a heartbeat; a failed node's objects move after it.
    pub lease_ttl: Duration,
    /// Where other nodes reach this one's admin listener (forwarded requests), if not the
    /// address it listens on (`--advertise`: e.g. a host name when it listens on 0.0.0.0).
    pub advertise: Option<String>,
}

/// Timeouts and connection caps of the two listeners.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open waiting for its next request.
    pub header_timeout: Duration,
    /// Time a client has to send a whole request body.
    pub body_timeout: Duration,
    /// Open ingress connections (WebSockets included); more are answered 503 and closed. Lowered
    /// at start if the file descriptor limit cannot hold that many.
    pub max_connections: usize,
    /// Open admin connections; a separate budget, so a flood of ingress connections never
    /// locks the operator out.
    pub max_admin_connections: usize,
    /// How long a shutdown waits for open requests before it closes their connections.
    pub drain_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(60),
            // Lowered at start to what the file descriptor limit can hold (`http::connection_cap`).
            max_connections: 50_000,
            max_admin_connections: 64,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Loopback defaults of the contract with the given data dir.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            cache_dir: None,
            listen: ([127, 0, 0, 1], 8787).into(),
            admin_listen: ([127, 0, 0, 1], 8788).into(),
            admin_token: None,
            admin_hosts: Vec::new(),
            client_location: ClientLocation::Unknown,
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(30),
            hibernate_after: Duration::from_secs(10),
            alarm_retry: RetryPolicy::default(),
            durable_commits: true,
            checkpoint_interval: Duration::from_secs(1),
            accept_log_damage: false,
            http: HttpLimits::default(),
            clock: crate::clock::Clock::system(),
            call_timeout: Duration::from_secs(30),
            cluster: None,
        }
    }

    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> PathBuf {
        (self.cache_dir.clone()).unwrap_or_else(|| self.data_dir.join("compiled"))
    }

    /// Checks every value once, before anything starts. The message names the flag that sets
    /// the offending value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |flag: &str, why: String| Err(ConfigError(format!("--{flag}: {why}")));
        if let Some(token) = &self.admin_token
            && token.trim().is_empty()
        {
            return bad(
                "admin-token",
                "the admin token is empty or whitespace, which would leave the admin API open; \
                 give a real token or none"
                    .into(),
            );
        }
        if !self.admin_listen.ip().is_loopback() && self.admin_token.is_none() {
            return bad(
                "admin-token",
                format!(
                    "refusing to serve the admin API on non-loopback {} without an admin token",
                    self.admin_listen
                ),
            );
        }
        if self.admin_hosts.iter().any(|h| h.trim() == "*") && self.admin_token.is_none() {
            return bad(
                "admin-host",
                "`*` lets any host name reach the admin API (a web page's DNS name too); it \
                 needs --admin-token"
                    .into(),
            );
        }
        let l = &self.limits;
        let positive_durations = [
            ("event-cpu-ms", l.event_cpu),
            ("background-limit-ms", l.background),
            ("idle-timeout-ms", self.idle_timeout),
            ("hibernate-after-ms", self.hibernate_after),
            ("checkpoint-interval-ms", self.checkpoint_interval),
            ("alarm-retry-base-ms", self.alarm_retry.base),
            ("header-timeout-ms", self.http.header_timeout),
            ("body-timeout-ms", self.http.body_timeout),
            ("call-timeout-ms", self.call_timeout),
            (
                "lease-ttl-ms",
                self.cluster
                    .as_ref()
                    .map_or(Duration::from_secs(1), |c| c.lease_ttl),
            ),
        ];
        for (flag, value) in positive_durations {
            if value.is_zero() {
                return bad(flag, "must be at least 1 ms".into());
            }
            if value > MAX_DURATION {
                return bad(flag, format!("at most {} ms", MAX_DURATION.as_millis()));
            }
        }
        if self.http.drain_timeout > MAX_DURATION {
            return bad(
                "drain-timeout-ms",
                format!("at most {} ms", MAX_DURATION.as_millis()),
            );
        }
        let ranges: [(&str, usize, usize, usize); 11] = [
            ("max-live-objects", l.max_live_objects, 1, MAX_LIVE_OBJECTS),
            (
                "instance-memory-mib",
                l.instance_memory_bytes,
                MIB,
                MAX_INSTANCE_MEMORY,
            ),
            ("memory-budget-mib", l.memory_budget_bytes, MIB, usize::MAX),
            (
                "max-body-bytes",
                l.max_request_body_bytes,
                1,
                MAX_BODY_BYTES,
            ),
            (
                "max-response-bytes",
                l.max_response_body_bytes,
                1,
                MAX_BODY_BYTES,
            ),
            (
                "max-event-write-bytes",
                l.max_event_write_bytes,
                1,
                MAX_BODY_BYTES,
            ),
            (
                "max-event-outbox-bytes",
                l.max_event_outbox_bytes,
                1,
                MAX_BODY_BYTES,
            ),
            (
                "max-ws-message-bytes",
                l.max_ws_message_bytes,
                1,
                MAX_BODY_BYTES,
            ),
            (
                "max-sockets-per-object",
                l.max_sockets_per_object,
                1,
                1 << 20,
            ),
            (
                "max-connections",
                self.http.max_connections,
                1,
                MAX_CONNECTIONS,
            ),
            (
                "max-admin-connections",
                self.http.max_admin_connections,
                1,
                MAX_CONNECTIONS,
            ),
        ];
        for (flag, value, min, max) in ranges {
            if value < min || value > max {
                return bad(flag, format!("{value} is out of range ({min} to {max})"));
            }
        }
        if l.memory_budget_bytes < l.instance_memory_bytes {
            return bad(
                "memory-budget-mib",
                format!(
                    "the budget ({} MiB) is smaller than one instance's memory limit \
                     (--instance-memory-mib {})",
                    l.memory_budget_bytes / MIB,
                    l.instance_memory_bytes / MIB
                ),
            );
        }
        // Every live-object slot reserves address space for its memories (see `engine::pool`):
        // too many slots of too much memory cannot be mapped at all.
        let reserved = (l.instance_slots() as u128)
            * MEMORIES_PER_SLOT as u128
            * (l.instance_memory_bytes as u128 + GUARD_BYTES as u128);
        if reserved > MAX_RESERVATION {
            return bad(
                "max-live-objects",
                format!(
                    "{} live objects of {} MiB each need {} TiB of address space, more than \
                     the {} TiB duro reserves at most; lower --max-live-objects or \
                     --instance-memory-mib",
                    l.max_live_objects,
                    l.instance_memory_bytes / MIB,
                    reserved >> 40,
                    MAX_RESERVATION >> 40
                ),
            );
        }
        Ok(())
    }
}

/// A setting that cannot work; the text names the flag.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where `request.cf` says a client is (its `country`, `city`, `latitude`, … and `colo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClientLocation {
    /// Nowhere: duro looks nothing up (`duro serve`'s default).
    #[default]
    Unknown,
    /// The place `wrangler dev` gives every request when it cannot ask Cloudflare (Austin,
    /// Texas; colo DFW): `duro dev`'s default, so maps and the like point somewhere.
    Placeholder,
    /// Cloudflare's visitor location headers (`cf-ipcountry`, `cf-ipcity`, `cf-iplatitude`, …,
    /// `cf-ray` for the colo), as a Cloudflare proxy in front of duro sets them. Only behind
    /// such a proxy: a client could set them itself.
    Headers,
}

const MIB: usize = 1024 * 1024;
/// Longest timeout or interval accepted (a day): longer values are typos, and tokio's timers
/// overflow on absurd ones.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
const MAX_LIVE_OBJECTS: usize = 1_000_000;
/// wasm32 linear memory tops out at 4 GiB.
const MAX_INSTANCE_MEMORY: usize = 4096 * MIB;
const MAX_BODY_BYTES: usize = 1 << 32;
const MAX_CONNECTIONS: usize = 1_000_000;
/// Address space the pool may reserve for linear memories (x86-64 user space is 128 TiB).
const MAX_RESERVATION: u128 = 32 << 40;

/// Limits that protect the runtime from its guests and its callers. Every bound on host memory
/// has a name here.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest storage key, in UTF-8 bytes.
    pub max_key_bytes: usize,
    /// Longest storage value, in bytes.
    pub max_value_bytes: usize,
    /// Most keys in one get-many / put-many / delete-many.
    pub max_batch_keys: usize,
    /// Most bytes one `list` call may return (keys + values); guards host memory.
    pub max_list_bytes: usize,
    /// Most bytes (keys + values) one event may write; guards host memory and the writer.
    pub max_event_write_bytes: usize,
    /// Guest time one event may use before it is interrupted.
    pub event_cpu: Duration,
    /// How long an object's background work (timers, `waitUntil`) may keep it in memory after
    /// its last event from outside; then its instance is dropped and the work with it.
    pub background: Duration,
    /// How long an object of a shared instance waits behind a mate's one event before it moves
    /// to another instance (starting over in memory): a spinning mate holds only itself.
    pub mate_wait: Duration,
    /// Linear memory one instance may grow to.
    pub instance_memory_bytes: usize,
    /// Linear memory of all live instances together. Growing past it first evicts idle objects;
    /// if none can go, the growing event fails with 503 and `Retry-After`.
    pub memory_budget_bytes: usize,
    /// Largest ingress request body.
    pub max_request_body_bytes: usize,
    /// Largest response body an object may return.
    pub max_response_body_bytes: usize,
    /// Largest component upload.
    pub max_component_bytes: usize,
    /// Most objects with a live instance at once.
    pub max_live_objects: usize,
    /// Events that may wait in one object's mailbox before callers get 503.
    pub mailbox_capacity: usize,
    /// Largest WebSocket message, either way; a bigger incoming one closes the socket with 1009.
    pub max_ws_message_bytes: usize,
    /// Most bytes of WebSocket messages one event may send (all sockets together).
    pub max_event_outbox_bytes: usize,
    /// Most WebSockets one object may hold open.
    pub max_sockets_per_object: usize,
}

impl Limits {
    /// Pooled instance slots: one per live object, and one per worker instance.
    pub fn instance_slots(&self) -> usize {
        self.max_live_objects + worker_instances(self.max_live_objects)
    }
}

/// Worker instances at once, busy or idle, all versions together, for a runtime of
/// `max_live_objects`: a quarter of that, between 4 and 256. Each holds a pooled slot beside the
/// live objects' (see `engine::pool`).
pub fn worker_instances(max_live_objects: usize) -> usize {
    (max_live_objects / 4).clamp(4, 256)
}

/// Guard region after each pooled linear memory (`engine::pool`).
pub const GUARD_BYTES: u64 = 2 * 1024 * 1024;
/// Linear memories pooled per instance slot (`engine::pool`).
pub const MEMORIES_PER_SLOT: u32 = 2;

/// Retry policy of failed alarms.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the first retry; each further retry doubles it.
    pub base: Duration,
    /// Retries after the first attempt before the alarm is dropped.
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max_retries: 6,
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1-based): base, 2 base, 4 base, ...
    pub fn delay(&self, retry: u32) -> Duration {
        self.base.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 2048,
            max_value_bytes: 128 * 1024,
            max_batch_keys: 128,
            max_list_bytes: 32 * MIB,
            max_event_write_bytes: 16 * MIB,
            event_cpu: Duration::from_secs(30),
            background: Duration::from_secs(15 * 60),
            mate_wait: Duration::from_millis(50),
            instance_memory_bytes: 128 * MIB,
            memory_budget_bytes: default_memory_budget(),
            max_request_body_bytes: 8 * MIB,
            max_response_body_bytes: 32 * MIB,
            max_component_bytes: 256 * MIB,
            max_live_objects: 10_000,
            mailbox_capacity: 1024,
            max_ws_message_bytes: MIB,
            max_event_outbox_bytes: 32 * MIB,
            max_sockets_per_object: 32_768,
        }
    }
}

/// The machine's physical memory (at least 1 GiB): what live instances may hold together by
/// default. The budget counts linear memory an instance could touch (a Rust guest reserves
/// ~1.1 MiB and touches ~0.1 MiB), so the machine's memory itself is the honest bound.
pub fn default_memory_budget() -> usize {
    physical_memory().map_or(4096 * MIB, |total| total.max(1024 * MIB))
}

#[cfg(unix)]
fn physical_memory() -> Option<usize> {
    // SAFETY: sysconf only reads system configuration.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && page > 0).then(|| (pages as usize).saturating_mul(page as usize))
}

#[cfg(not(unix))]
fn physical_memory() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new("/tmp/x")
    }

    fn error(config: &Config) -> String {
        config.validate().unwrap_err().0
    }

    #[test]
    fn the_defaults_are_valid() {
        config().validate().unwrap();
    }

    #[test]
    fn an_empty_or_blank_admin_token_is_refused() {
        for token in ["", "  ", "\t\n"] {
            let mut c = config();
            c.admin_token = Some(token.into());
            assert!(error(&c).starts_with("--admin-token: "), "{token:?}");
        }
        let mut c = config();
        c.admin_listen = ([0, 0, 0, 0], 8788).into();
        assert!(error(&c).contains("non-loopback"));
        c.admin_token = Some("t".into());
        c.validate().unwrap();
    }

    #[test]
    fn zero_and_huge_values_name_their_flag() {
        let mut c = config();
        c.limits.max_live_objects = 0;
        assert!(error(&c).starts_with("--max-live-objects:"));
        let mut c = config();
        c.limits.event_cpu = Duration::ZERO;
        assert!(error(&c).starts_with("--event-cpu-ms:"));
        let mut c = config();
        c.limits.max_live_objects = 1_000_000;
        let e = error(&c);
        assert!(e.contains("address space"), "{e}");
        let mut c = config();
        c.limits.instance_memory_bytes = usize::MAX;
        assert!(error(&c).starts_with("--instance-memory-mib:"));
        let mut c = config();
        c.limits.memory_budget_bytes = 64 * MIB;
        assert!(error(&c).starts_with("--memory-budget-mib:"));
    }
}
