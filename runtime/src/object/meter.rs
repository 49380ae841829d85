//! Per-object metering — the seed's billing model (requests and duration) made visible: each
//! live actor counts its events, their wall and CPU time, how long their outputs waited on the
//! output gate, the storage bytes its guest read and wrote, and its instance's peak memory.
//! Listings and "top objects" read the counters without disturbing the actor. When an actor
//! retires its totals are kept (for a bounded number of objects, the costliest first) and
//! continue if the object comes back; every total also counts in its class's, which `/metrics`
//! reports (per class only: bounded cardinality). Totals are since this node started.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use crate::ids::ObjectKey;

/// Objects whose totals are kept once their actors retire; past it, the cheaper half is folded
/// into their classes' totals.
const RETAINED: usize = 10_000;

/// One live actor's counters: written by the actor after each event, read by anyone.
#[derive(Default)]
pub struct ObjectMeter {
    /// When its last event from outside ended (ms since the Unix epoch, the runtime's clock).
    last_event_ms: AtomicI64,
    /// Its open WebSockets.
    websockets: AtomicUsize,
    events: AtomicU64,
    wall_ns: AtomicU64,
    cpu_ns: AtomicU64,
    gate_ns: AtomicU64,
    read_bytes: AtomicU64,
    written_bytes: AtomicU64,
    peak_memory_bytes: AtomicU64,
}

/// What one event cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventCost {
    pub wall_ns: u64,
    pub cpu_ns: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub memory_bytes: u64,
}

/// An object's (or a class's) totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Events from outside: requests, RPC calls, alarms, socket messages.
    pub events: u64,
    pub wall_ns: u64,
    /// Time its events ran on a runtime thread (the sum of their polls: guest and host work,
    /// its CPU time unless the OS preempted the thread).
    pub cpu_ns: u64,
    /// Time its events' outputs waited for their commits to be durable.
    pub gate_ns: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub peak_memory_bytes: u64,
}

impl Usage {
    fn add(&mut self, other: &Usage) {
        self.events += other.events;
        self.wall_ns += other.wall_ns;
        self.cpu_ns += other.cpu_ns;
        self.gate_ns += other.gate_ns;
        self.read_bytes += other.read_bytes;
        self.written_bytes += other.written_bytes;
        self.peak_memory_bytes = self.peak_memory_bytes.max(other.peak_memory_bytes);
    }

    /// The figure `by` ranks objects by.
    pub fn rank(&self, by: Rank) -> u64 {
        match by {
            Rank::Cpu => self.cpu_ns,
            Rank::Requests => self.events,
            Rank::Storage => self.read_bytes + self.written_bytes,
            Rank::Wall => self.wall_ns,
        }
    }
}

/// What "top objects" ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    Cpu,
    Requests,
    Storage,
    Wall,
}

impl std::str::FromStr for Rank {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "requests" => Ok(Self::Requests),
            "storage" => Ok(Self::Storage),
            "wall" => Ok(Self::Wall),
            other => Err(format!(
                "cannot rank by {other:?}: by cpu, requests, storage or wall"
            )),
        }
    }
}

impl ObjectMeter {
    /// Counts one event from outside that ended at `now_ms`.
    pub fn event(&self, now_ms: i64, websockets: usize, cost: EventCost) {
        self.last_event_ms.store(now_ms, Ordering::Relaxed);
        self.websockets.store(websockets, Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed);
        self.wall_ns.fetch_add(cost.wall_ns, Ordering::Relaxed);
        self.cpu_ns.fetch_add(cost.cpu_ns, Ordering::Relaxed);
        self.read_bytes
            .fetch_add(cost.read_bytes, Ordering::Relaxed);
        self.written_bytes
            .fetch_add(cost.written_bytes, Ordering::Relaxed);
        self.peak_memory_bytes
            .fetch_max(cost.memory_bytes, Ordering::Relaxed);
    }

    /// Outputs waited `ns` for their commit.
    pub fn gate_wait(&self, ns: u64) {
        self.gate_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn open_websockets(&self) -> usize {
        self.websockets.load(Ordering::Relaxed)
    }

    pub fn last_event_ms(&self) -> Option<i64> {
        let last = self.last_event_ms.load(Ordering::Relaxed);
        (last != 0).then_some(last)
    }

    pub fn usage(&self) -> Usage {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Usage {
            events: load(&self.events),
            wall_ns: load(&self.wall_ns),
            cpu_ns: load(&self.cpu_ns),
            gate_ns: load(&self.gate_ns),
            read_bytes: load(&self.read_bytes),
            written_bytes: load(&self.written_bytes),
            peak_memory_bytes: load(&self.peak_memory_bytes),
        }
    }

    /// A meter that continues `usage` (an object that comes back).
    fn continuing(usage: Usage) -> Self {
        let meter = Self::default();
        meter.events.store(usage.events, Ordering::Relaxed);
        meter.wall_ns.store(usage.wall_ns, Ordering::Relaxed);
        meter.cpu_ns.store(usage.cpu_ns, Ordering::Relaxed);
        meter.gate_ns.store(usage.gate_ns, Ordering::Relaxed);
        meter.read_bytes.store(usage.read_bytes, Ordering::Relaxed);
        meter
            .written_bytes
            .store(usage.written_bytes, Ordering::Relaxed);
        meter
            .peak_memory_bytes
            .store(usage.peak_memory_bytes, Ordering::Relaxed);
        meter
    }
}

/// Totals per object.
pub type PerObject = Vec<(ObjectKey, Usage)>;

/// The totals of objects whose actors retired, and what no longer fits per object.
#[derive(Default)]
pub struct Retired {
    objects: Mutex<RetiredInner>,
}

#[derive(Default)]
struct RetiredInner {
    by_object: HashMap<ObjectKey, Usage>,
    /// Per class incarnation: the totals of objects dropped from `by_object`.
    folded: HashMap<u64, Usage>,
}

impl Retired {
    /// The meter of a new actor of `key`: continuing the object's kept totals, if any.
    pub fn revive(&self, key: &ObjectKey) -> ObjectMeter {
        let kept = self.lock().by_object.remove(key);
        kept.map_or_else(ObjectMeter::default, ObjectMeter::continuing)
    }

    /// Keeps the totals of a retiring actor.
    pub fn retire(&self, key: &ObjectKey, meter: &ObjectMeter) {
        let usage = meter.usage();
        if usage.events == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.by_object.insert(key.clone(), usage);
        if inner.by_object.len() > RETAINED {
            let mut all: Vec<_> = inner.by_object.drain().collect();
            all.sort_by_key(|(_, usage)| std::cmp::Reverse(usage.cpu_ns));
            for (key, usage) in all.split_off(RETAINED / 2) {
                inner.folded.entry(key.incarnation).or_default().add(&usage);
            }
            inner.by_object.extend(all);
        }
    }

    /// The kept totals of one retired object, if any.
    pub fn of(&self, key: &ObjectKey) -> Option<Usage> {
        self.lock().by_object.get(key).copied()
    }

    /// Every kept object's totals, and the folded totals per class incarnation.
    pub fn snapshot(&self) -> (PerObject, Vec<(u64, Usage)>) {
        let inner = self.lock();
        let objects = inner
            .by_object
            .iter()
            .map(|(k, u)| (k.clone(), *u))
            .collect();
        let folded = inner.folded.iter().map(|(c, u)| (*c, *u)).collect();
        (objects, folded)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RetiredInner> {
        self.objects.lock().expect("metering lock")
    }
}

/// Sums per class incarnation.
pub fn per_class<'a>(
    objects: impl Iterator<Item = (&'a ObjectKey, &'a Usage)>,
    folded: &[(u64, Usage)],
) -> HashMap<u64, Usage> {
    let mut classes: HashMap<u64, Usage> = HashMap::new();
    for (incarnation, usage) in folded {
        classes.entry(*incarnation).or_default().add(usage);
    }
    for (key, usage) in objects {
        classes.entry(key.incarnation).or_default().add(usage);
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ObjectId;

    fn key(class: u64, n: u8) -> ObjectKey {
        ObjectKey {
            incarnation: class,
            id: ObjectId::from_bytes([n; 32]),
        }
    }

    #[test]
    fn retired_totals_continue_and_the_cheapest_fold_into_their_class() {
        let retired = Retired::default();
        let meter = retired.revive(&key(1, 1));
        let cost = EventCost {
            wall_ns: 10,
            cpu_ns: 7,
            read_bytes: 3,
            written_bytes: 4,
            memory_bytes: 100,
        };
        meter.event(1, 0, cost);
        retired.retire(&key(1, 1), &meter);
        let again = retired.revive(&key(1, 1));
        again.event(2, 2, cost);
        let usage = again.usage();
        assert_eq!(
            (usage.events, usage.cpu_ns, usage.peak_memory_bytes),
            (2, 14, 100)
        );
        assert_eq!(again.open_websockets(), 2);
        assert_eq!(again.last_event_ms(), Some(2));

        for n in 0..=RETAINED as u32 {
            let meter = ObjectMeter::default();
            meter.event(
                1,
                0,
                EventCost {
                    cpu_ns: u64::from(n),
                    ..cost
                },
            );
            let id = ObjectId::from_bytes(
                [n.to_be_bytes().as_slice(), &[0; 28]]
                    .concat()
                    .try_into()
                    .unwrap(),
            );
            retired.retire(&ObjectKey { incarnation: 2, id }, &meter);
        }
        let (objects, folded) = retired.snapshot();
        assert!(objects.len() <= RETAINED / 2 + 1, "{}", objects.len());
        assert!(
            objects
                .iter()
                .all(|(_, u)| u.cpu_ns as usize >= RETAINED / 2)
        );
        let classes = per_class(objects.iter().map(|(k, u)| (k, u)), &folded);
        assert_eq!(
            classes[&2].events,
            RETAINED as u64 + 1,
            "nothing is lost in the sums"
        );
    }
}
