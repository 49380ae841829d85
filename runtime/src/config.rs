//! The runtime's settings: addresses, data dir and every limit, typed and with units.
//!
//! `cli` fills a [`Config`] from flags and environment; embedders (the tests) build one directly.
//! Defaults are the contract's (DESIGN.md "Limits").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder holding `duro.redb` and the compiled-component cache.
    pub data_dir: PathBuf,
    /// Ingress listener (objects).
    pub listen: SocketAddr,
    /// Admin listener (classes, health, metrics).
    pub admin_listen: SocketAddr,
    /// Bearer token required by the admin API, if set.
    pub admin_token: Option<String>,
    pub limits: Limits,
    /// How long a live object may sit without events before its instance is dropped.
    pub idle_timeout: Duration,
    /// How long an object whose only activity is open WebSockets keeps its instance.
    pub hibernate_after: Duration,
    /// How failed alarms are retried.
    pub alarm_retry: crate::alarm::RetryPolicy,
    /// Whether each group's log record is fdatasynced before its outputs leave. Only benchmarks
    /// turn this off (checkpoints still sync redb); every guarantee of the output gate assumes
    /// it is on.
    pub durable_commits: bool,
    /// How often the group committer makes redb's file durable, so that the write-ahead log can
    /// start over (and a restart after a crash replays at most this much).
    pub checkpoint_interval: Duration,
}

impl Config {
    /// Loopback defaults of the contract with the given data dir.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: ([127, 0, 0, 1], 8787).into(),
            admin_listen: ([127, 0, 0, 1], 8788).into(),
            admin_token: None,
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(30),
            hibernate_after: Duration::from_secs(10),
            alarm_retry: crate::alarm::RetryPolicy::default(),
            durable_commits: true,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// Limits that protect the runtime from its guests and its callers.
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
    /// Wall-clock time a guest may run in one event before it is interrupted.
    pub event_cpu: Duration,
    /// Linear memory one instance may grow to.
    pub instance_memory_bytes: usize,
    /// Largest ingress request body.
    pub max_request_body_bytes: usize,
    /// Largest component upload.
    pub max_component_bytes: usize,
    /// Most objects with a live instance at once.
    pub max_live_objects: usize,
    /// Events that may wait in one object's mailbox before callers get 503.
    pub mailbox_capacity: usize,
    /// Largest WebSocket message, either way; a bigger incoming one closes the socket with 1009.
    pub max_ws_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 2048,
            max_value_bytes: 128 * 1024,
            max_batch_keys: 128,
            max_list_bytes: 32 * 1024 * 1024,
            event_cpu: Duration::from_secs(30),
            instance_memory_bytes: 128 * 1024 * 1024,
            max_request_body_bytes: 8 * 1024 * 1024,
            max_component_bytes: 256 * 1024 * 1024,
            max_live_objects: 10_000,
            mailbox_capacity: 1024,
            max_ws_message_bytes: 1024 * 1024,
        }
    }
}
