//! Shared instances: the objects of a class whose component exports `evict` (the
//! `shared-instance` world: JS and Python SDKs) live many to an instance, as Cloudflare's objects
//! share an isolate. A JS instance holds ~10 MiB; one per object would cap a machine at a few
//! thousand live objects.
//!
//! Each object lodges in one of the class's instances while it is live (its in-guest state is
//! there) and runs its events there one at a time, with its storage and sockets mounted for the
//! event. When it retires, the instance is told to `evict` it before its next event; an instance
//! whose last object left is dropped. An object never queues behind a guest that waits on a call
//! (the callee might share the instance), nor behind a mate's event that has held the instance
//! past a short bound (a mate spinning until its CPU limit): it moves to another instance,
//! starting over in memory as after an eviction. A trap drops the instance, and with it what its
//! objects kept in memory, as workerd resets an isolate.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

use crate::abi::{CallWatch, Instance, ObjectParts};
use crate::ids::ObjectId;
use crate::lock;

/// Most objects one instance holds: more objects then get a new instance, so one instance's heap
/// (under the per-instance memory limit) and one trap's reach stay bounded.
const MAX_TENANTS: usize = 1024;

/// The shared instances of one class version.
pub struct SharedPool {
    /// How many instances objects spread over before they double up.
    size: usize,
    hosts: Mutex<Vec<Arc<Host>>>,
}

/// One shared instance (instantiated at its first event, again after a trap).
struct Host {
    slot: Arc<tokio::sync::Mutex<Option<Instance>>>,
    watch: Arc<CallWatch>,
    tenants: AtomicUsize,
    /// Objects that left since the instance last ran: it forgets them before the next event.
    departed: Mutex<Vec<ObjectId>>,
    /// When the event holding the instance began ([`now`]), or 0 while it is free.
    busy_since: AtomicU64,
}

impl Host {
    /// How long the event holding the instance has run, if one does.
    fn busy_for(&self) -> Option<Duration> {
        match self.busy_since.load(Ordering::Acquire) {
            0 => None,
            since => Some(Duration::from_nanos(now().saturating_sub(since))),
        }
    }

    /// Whether an event has held it past `bound`: objects go elsewhere.
    fn stuck(&self, bound: Duration) -> bool {
        self.busy_for().is_some_and(|busy| busy >= bound)
    }
}

/// Nanoseconds since the first call, never 0 (a process-wide monotonic clock in one word).
fn now() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// An object's place in a shared instance; dropping it (the object retires or moves) asks the
/// instance to forget the object.
pub struct Tenancy {
    pool: Arc<SharedPool>,
    host: Arc<Host>,
    id: ObjectId,
}

/// An event's hold on its shared instance: no other object's event runs there meanwhile.
pub struct Visit {
    slot: OwnedMutexGuard<Option<Instance>>,
    host: Arc<Host>,
}

impl SharedPool {
    pub fn new() -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Self {
            size: (2 * cores).max(2),
            hosts: Mutex::new(Vec::new()),
        })
    }

    /// Lodges object `id`: in a new instance while the pool has fewer than its size, else in the
    /// least-filled instance that is not waiting on a call nor held by an event past `bound` (a
    /// new one if all are, or are full).
    pub fn lodge(self: &Arc<Self>, id: ObjectId, bound: Duration) -> Tenancy {
        let mut hosts = lock(&self.hosts);
        let open = hosts
            .iter()
            .filter(|h| !h.watch.is_calling() && !h.stuck(bound))
            .min_by_key(|h| h.tenants.load(Ordering::Relaxed));
        let host = match open {
            Some(host)
                if hosts.len() >= self.size
                    && host.tenants.load(Ordering::Relaxed) < MAX_TENANTS =>
            {
                host.clone()
            }
            _ => {
                let host = Arc::new(Host {
                    slot: Arc::new(tokio::sync::Mutex::new(None)),
                    watch: Arc::default(),
                    tenants: AtomicUsize::new(0),
                    departed: Mutex::new(Vec::new()),
                    busy_since: AtomicU64::new(0),
                });
                hosts.push(host.clone());
                host
            }
        };
        host.tenants.fetch_add(1, Ordering::Relaxed);
        Tenancy {
            pool: self.clone(),
            host,
            id,
        }
    }

    /// The number of instances the pool holds (live or not yet instantiated).
    #[cfg(test)]
    fn hosts(&self) -> usize {
        lock(&self.hosts).len()
    }
}

impl Tenancy {
    /// Waits for the instance to be free, or returns `None` as soon as it is busy with an event
    /// whose guest waits on a call, or with one that has held it for `bound`: the object must
    /// then move (drop this tenancy and lodge again). A free instance is entered even while a
    /// call of its guest is in flight (an outgoing request left running after its event,
    /// `waitUntil`): nothing waits on it. Short events queued one after another never make it
    /// move: the bound is on one event.
    pub async fn enter(&self, bound: Duration) -> Option<Visit> {
        let host = &self.host;
        loop {
            let call_started = host.watch.call_started();
            tokio::pin!(call_started);
            call_started.as_mut().enable();
            if let Ok(slot) = host.slot.clone().try_lock_owned() {
                return Some(Visit::new(slot, host.clone()));
            }
            if host.watch.is_calling() {
                return None;
            }
            let busy = host.busy_for().unwrap_or_default();
            if busy >= bound {
                return None;
            }
            tokio::select! {
                biased;
                slot = host.slot.clone().lock_owned() => {
                    return Some(Visit::new(slot, host.clone()));
                }
                () = &mut call_started => {}
                () = tokio::time::sleep(bound - busy) => {}
            }
        }
    }
}

impl Drop for Tenancy {
    fn drop(&mut self) {
        let mut hosts = lock(&self.pool.hosts);
        if self.host.tenants.fetch_sub(1, Ordering::Relaxed) == 1 {
            // The last object left: the instance goes (once no event holds it).
            hosts.retain(|h| !Arc::ptr_eq(h, &self.host));
        } else {
            lock(&self.host.departed).push(self.id);
        }
    }
}

impl Visit {
    fn new(slot: OwnedMutexGuard<Option<Instance>>, host: Arc<Host>) -> Self {
        host.busy_since.store(now(), Ordering::Release);
        Self { slot, host }
    }

    /// The instance, if it is instantiated (the caller instantiates it otherwise).
    pub fn instance(&mut self) -> Option<&mut Instance> {
        self.slot.as_mut()
    }

    /// The instance, with the visiting object mounted.
    pub fn mounted(&mut self) -> &mut Instance {
        self.slot.as_mut().expect("installed before the event")
    }

    /// Takes the visiting object's parts back.
    pub fn unmount(&mut self) -> ObjectParts {
        self.mounted().unmount().expect("mounted for the event")
    }

    /// Installs a new instance (watched for calls).
    pub fn install(&mut self, mut instance: Instance) -> &mut Instance {
        instance.watch_calls(self.host.watch.clone());
        lock(&self.host.departed).clear(); // a new instance remembers nobody
        self.slot.insert(instance)
    }

    /// The objects the instance must forget before the next event runs.
    pub fn departed(&self) -> Vec<ObjectId> {
        std::mem::take(&mut *lock(&self.host.departed))
    }

    /// Drops the instance (a trap, or state that cannot be trusted): every object lodged in it
    /// starts over in memory at its next event.
    pub fn reset(&mut self) -> Option<Instance> {
        self.slot.take()
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        self.host.busy_since.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(3600);

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes([n; 32])
    }

    fn single() -> Arc<SharedPool> {
        Arc::new(SharedPool {
            size: 1,
            hosts: Mutex::new(Vec::new()),
        })
    }

    #[test]
    fn objects_spread_over_the_pool_then_share_and_an_empty_instance_goes() {
        let pool = SharedPool::new();
        let tenancies: Vec<_> = (0..pool.size as u8 * 3)
            .map(|n| pool.lodge(id(n), BOUND))
            .collect();
        assert_eq!(pool.hosts(), pool.size);
        for host in lock(&pool.hosts).iter() {
            assert_eq!(host.tenants.load(Ordering::Relaxed), 3);
        }
        drop(tenancies);
        assert_eq!(pool.hosts(), 0, "instances without objects are dropped");
    }

    #[tokio::test]
    async fn an_object_moves_instead_of_waiting_on_a_calling_guest() {
        let pool = single();
        let caller = pool.lodge(id(1), BOUND);
        let callee = pool.lodge(id(2), BOUND);
        assert!(Arc::ptr_eq(&caller.host, &callee.host));
        let visit = caller.enter(BOUND).await.expect("free");
        let waiting = caller.host.watch.begin();
        assert!(
            callee.enter(BOUND).await.is_none(),
            "it must move, not wait"
        );
        let moved = pool.lodge(id(2), BOUND);
        assert!(!Arc::ptr_eq(&moved.host, &caller.host), "lodged elsewhere");
        drop(callee);
        assert_eq!(lock(&caller.host.departed).as_slice(), &[id(2)]);
        drop((waiting, visit));
    }

    #[tokio::test]
    async fn an_object_moves_instead_of_waiting_past_the_bound_on_one_event() {
        let bound = Duration::from_millis(30);
        let pool = single();
        let (spinner, mate) = (pool.lodge(id(1), bound), pool.lodge(id(2), bound));
        assert!(Arc::ptr_eq(&spinner.host, &mate.host));
        // Short events one after another: the mate waits its turn.
        let short = spinner.enter(bound).await.expect("free");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(short);
        });
        drop(
            mate.enter(bound)
                .await
                .expect("entered after the short event"),
        );
        release.await.unwrap();
        // One long event: the mate gives up after the bound, and lodges elsewhere.
        let long = spinner.enter(bound).await.expect("free");
        let started = Instant::now();
        assert!(mate.enter(bound).await.is_none(), "it must move");
        assert!(started.elapsed() >= bound);
        let moved = pool.lodge(id(3), bound);
        assert!(
            !Arc::ptr_eq(&moved.host, &spinner.host),
            "not in the held instance"
        );
        drop(long);
    }
}
