//! Runtime metrics, rendered in Prometheus text format on the admin `/metrics` route, and the
//! runtime's health, reported on `/healthz`.
//!
//! Metrics count and health reports; neither decides. Each subsystem gets the `Arc<Metrics>` and bumps its own
//! fields. One registry per runtime (no global recorder), so tests can run many runtimes.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric the runtime exports.
pub struct Metrics {
    registry: Registry,
    /// Ingress requests answered, any status.
    pub requests: Counter,
    /// redb write transactions committed (each one fsync when commits are durable).
    pub commits: Counter,
    /// Write sets (events, class changes) carried by those commits.
    pub commit_writes: Counter,
    /// Events per commit: the group-commit batch size.
    pub commit_group_size: Histogram,
    /// Seconds from opening a write transaction to a durable commit (fsync included).
    pub commit_seconds: Histogram,
    /// Commits that failed (their outputs were never released).
    pub commit_failures: Counter,
    /// Group commits that made redb's file durable, letting the write-ahead log start over.
    pub checkpoints: Counter,
    /// Groups replayed from the write-ahead log at startup (after an unclean stop).
    pub log_replayed_groups: Counter,
    /// Instances created (first activation, re-activation after eviction, reset after a trap).
    pub activations: Counter,
    /// Seconds to instantiate a component for an object.
    pub instantiate_seconds: Histogram,
    /// Seconds from the start of an instantiation to the end of the first event it serves
    /// (the guest's call; the commit is not waited for): a cold start as the object sees it.
    pub activation_seconds: Histogram,
    /// Live objects evicted after their idle timeout.
    pub evictions: Counter,
    /// Objects with a live actor right now.
    pub live_objects: Gauge,
    /// Events that trapped (the instance was reset).
    pub traps: Counter,
    /// Components compiled by Cranelift.
    pub compilations: Counter,
    /// Components loaded from the compiled-artifact cache instead.
    pub cache_loads: Counter,
    /// Events waiting in mailboxes, summed over objects.
    pub queued_events: Gauge,
    /// Instances dropped while their object kept open WebSockets.
    pub hibernations: Counter,
    /// Alarm deliveries (first attempts and retries).
    pub alarms_fired: Counter,
    /// Alarm attempts that failed (error or trap).
    pub alarm_failures: Counter,
    /// Seconds between an alarm's time and its first delivery.
    pub alarm_lateness_seconds: Histogram,
    /// 1 while the storage writer commits; 0 once a commit failed (every write fails until a
    /// restart).
    pub storage_writer_ok: Gauge,
    /// Faults of the runtime itself (a panic while running an event).
    pub internal_errors: Counter,
    /// Linear memory reserved by live instances and SQL page caches (the memory budget's use).
    pub instance_memory_bytes: Gauge,
    /// Connections refused because a listener was at its connection cap.
    pub connections_refused: Counter,
    /// Admin requests refused as a web page's (another site's, another host name's, or a write
    /// of a type a form can send), token or not.
    pub admin_refused: Counter,
    /// What `/healthz` reports.
    pub health: Health,
}

/// Problems that make the runtime unhealthy until a restart: a failed storage writer, an
/// internal fault. Each is reported once with its reason.
#[derive(Default)]
pub struct Health {
    problems: Mutex<Vec<String>>,
}

/// The message of a caught panic.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Most problems kept (the first ones explain the rest).
const MAX_PROBLEMS: usize = 16;

impl Health {
    pub fn report(&self, problem: impl Into<String>) {
        let mut problems = crate::lock(&self.problems);
        if problems.len() < MAX_PROBLEMS {
            problems.push(problem.into());
        }
    }

    /// Empty while healthy.
    pub fn problems(&self) -> Vec<String> {
        crate::lock(&self.problems).clone()
    }
}

/// Bucket bounds for instantiation and activation times: 10 µs steps up to 200 µs (where the
/// targets are), then coarser.
const ACTIVATION_BUCKETS: [f64; 30] = [
    0.000_01, 0.000_02, 0.000_03, 0.000_04, 0.000_05, 0.000_06, 0.000_07, 0.000_08, 0.000_09,
    0.000_1, 0.000_11, 0.000_12, 0.000_13, 0.000_14, 0.000_15, 0.000_16, 0.000_17, 0.000_18,
    0.000_19, 0.000_2, 0.000_25, 0.000_3, 0.000_4, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.1, 1.0,
];

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("duro");
        let seconds = || Histogram::new(exponential_buckets(0.000_005, 2.0, 24));
        let metrics = Self {
            requests: Counter::default(),
            commits: Counter::default(),
            commit_writes: Counter::default(),
            commit_group_size: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            commit_seconds: seconds(),
            commit_failures: Counter::default(),
            checkpoints: Counter::default(),
            log_replayed_groups: Counter::default(),
            activations: Counter::default(),
            instantiate_seconds: Histogram::new(ACTIVATION_BUCKETS.iter().copied()),
            activation_seconds: Histogram::new(ACTIVATION_BUCKETS.iter().copied()),
            evictions: Counter::default(),
            live_objects: Gauge::default(),
            traps: Counter::default(),
            compilations: Counter::default(),
            cache_loads: Counter::default(),
            queued_events: Gauge::default(),
            hibernations: Counter::default(),
            alarms_fired: Counter::default(),
            alarm_failures: Counter::default(),
            alarm_lateness_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 20)),
            storage_writer_ok: Gauge::default(),
            internal_errors: Counter::default(),
            connections_refused: Counter::default(),
            admin_refused: Counter::default(),
            instance_memory_bytes: Gauge::default(),
            health: Health::default(),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register("requests", "Ingress requests answered", m.requests.clone());
        registry.register(
            "commits",
            "redb write transactions committed",
            m.commits.clone(),
        );
        registry.register(
            "commit_writes",
            "Write sets carried by commits",
            m.commit_writes.clone(),
        );
        registry.register(
            "commit_group_size",
            "Write sets per commit (group commit batch size)",
            m.commit_group_size.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time to commit a batch durably, fsync included",
            m.commit_seconds.clone(),
        );
        registry.register(
            "commit_failures",
            "Commits that failed",
            m.commit_failures.clone(),
        );
        registry.register(
            "checkpoints",
            "Commits that made the database file durable (the log starts over)",
            m.checkpoints.clone(),
        );
        registry.register(
            "log_replayed_groups",
            "Groups replayed from the write-ahead log at startup",
            m.log_replayed_groups.clone(),
        );
        registry.register(
            "activations",
            "Objects brought into memory: an instance created, or a place taken in a shared one",
            m.activations.clone(),
        );
        registry.register(
            "instantiate_seconds",
            "Time to instantiate a component (for an object, or a shared instance)",
            m.instantiate_seconds.clone(),
        );
        registry.register(
            "activation_seconds",
            "Time from the start of an instantiation to the end of its first event",
            m.activation_seconds.clone(),
        );
        registry.register(
            "evictions",
            "Objects evicted after their idle timeout",
            m.evictions.clone(),
        );
        registry.register(
            "live_objects",
            "Objects with a live actor",
            m.live_objects.clone(),
        );
        registry.register("traps", "Events that trapped", m.traps.clone());
        registry.register(
            "compilations",
            "Components compiled by Cranelift",
            m.compilations.clone(),
        );
        registry.register(
            "cache_loads",
            "Components loaded from the compiled cache",
            m.cache_loads.clone(),
        );
        registry.register(
            "queued_events",
            "Events waiting in object mailboxes",
            m.queued_events.clone(),
        );
        registry.register(
            "hibernations",
            "Instances dropped while their object kept open WebSockets",
            m.hibernations.clone(),
        );
        registry.register(
            "alarms_fired",
            "Alarm deliveries, retries included",
            m.alarms_fired.clone(),
        );
        registry.register(
            "alarm_failures",
            "Alarm attempts that failed",
            m.alarm_failures.clone(),
        );
        registry.register(
            "alarm_lateness_seconds",
            "Delay between an alarm's time and its first delivery",
            m.alarm_lateness_seconds.clone(),
        );
        registry.register(
            "storage_writer_ok",
            "1 while the storage writer commits, 0 after a failed commit (until a restart)",
            m.storage_writer_ok.clone(),
        );
        registry.register(
            "internal_errors",
            "Faults of the runtime itself (panics while running an event)",
            m.internal_errors.clone(),
        );
        registry.register(
            "instance_memory_bytes",
            "Linear memory reserved by live instances (the memory budget's use)",
            m.instance_memory_bytes.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused at a listener's connection cap",
            m.connections_refused.clone(),
        );
        registry.register(
            "admin_refused",
            "Admin requests refused as a web page's (another site, another host name, a form's type)",
            m.admin_refused.clone(),
        );
        m.storage_writer_ok.set(1);
        Self {
            registry,
            ..metrics
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.render_with("")
    }

    /// [`render`](Self::render) with `families` (OpenMetrics text) added before its end.
    pub fn render_with(&self, families: &str) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        match out.strip_suffix("# EOF\n") {
            Some(head) => format!("{head}{families}# EOF\n"),
            None => out + families,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
