//! The directory of live objects: object key -> mailbox of its actor.
//!
//! Invariant: at most one actor per object key at any time. A sender puts an event into a
//! mailbox while holding the directory shard's lock, and an idle actor removes itself under the
//! same lock only if its mailbox is empty, so no event can reach a retiring actor.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::actor::{Actor, Envelope};
use super::meter::{ObjectMeter, Usage};
use super::reaper::Reaper;
use super::remote::Place;
use super::{AlarmOutcome, ObjectError};
use crate::abi::{InstanceEnv, MemoryBudget, Request, Response};
use crate::class::{Classes, LoadedClass};
use crate::clock::Clock;
use crate::config::{Config, Limits};
use crate::ids::{ObjectId, ObjectKey};
use crate::metrics::Metrics;
use crate::storage::Committer;
use crate::websocket::{Outgoing, SocketEvent, SocketId, SocketLimits, SocketOwner};

/// Shards of the directory map; spreads lock contention across cores.
const SHARDS: usize = 64;
/// How long an activation waits for idle objects to make room when the live bound is reached,
/// before the caller gets 503.
const PRESSURE_WAIT: Duration = Duration::from_secs(1);
/// How long one eviction request is given before the next idle object is asked.
const EVICTION_POLL: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub(super) struct Mailbox {
    /// Boxed: the channel allocates room for 32 of its items up front, per object.
    pub tx: mpsc::Sender<Box<Envelope>>,
    /// Distinguishes successive actors of the same object.
    pub actor: u64,
    /// What the actor counts of itself, read by listings without disturbing it.
    pub meter: Arc<ObjectMeter>,
}

/// What a listing shows of an object that has an actor now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveObject {
    /// Its open WebSockets (hibernated or not).
    pub websockets: usize,
    /// When its last event ended (ms since the Unix epoch); `None` before its first.
    pub last_event_ms: Option<i64>,
}

/// The totals of [`Directory::usage`].
pub struct Metered {
    /// Per object (live ones, and those kept after their actors retired).
    pub objects: Vec<(ObjectKey, Usage)>,
    /// Per class incarnation, every object counted.
    pub classes: HashMap<u64, Usage>,
}

/// What every actor shares.
pub(super) struct Shared {
    pub classes: Arc<Classes>,
    pub committer: Committer,
    pub db: crate::storage::Store,
    pub limits: Limits,
    pub idle_timeout: Duration,
    pub hibernate_after: Duration,
    /// The time guests see (the system clock, or a test's manual one).
    pub clock: Clock,
    /// How long a call between objects waits for its callee.
    pub call_timeout: Duration,
    pub socket_limits: SocketLimits,
    pub metrics: Arc<Metrics>,
    /// One permit per live actor: the bound on live objects.
    pub live: Arc<Semaphore>,
    /// Signalled when the live bound or the memory budget is reached: idle actors retire to
    /// make room.
    pub pressure: Arc<Notify>,
    /// Linear memory of all live instances together.
    pub memory: Arc<MemoryBudget>,
    /// Held by every actor; `shutdown` waits until all are dropped.
    pub actors_done: mpsc::Sender<()>,
    /// Drops retired actors off the async threads.
    pub reaper: Reaper,
    pub shards: Vec<Mutex<HashMap<ObjectKey, Mailbox>>>,
    pub hasher: RandomState,
    pub next_actor: AtomicU64,
    /// Set by `shutdown`: no new events are accepted.
    pub closing: AtomicBool,
    /// Set by `halt`: every running guest and SQL statement is cut off.
    pub halt: Arc<AtomicBool>,
    /// Cluster mode: where objects of other nodes' shards run.
    pub remote: Option<super::remote::Remote>,
    /// The metering totals of objects whose actors retired.
    pub retired: super::meter::Retired,
    /// Cluster mode: the mailboxes of actors told to stop because their shard moves, until
    /// they have stopped (every eviction waits for all of them, whoever started it).
    pub evicting: Mutex<Vec<Mailbox>>,
}

/// Routes events to objects. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    shared: Arc<Shared>,
}

/// Resolves once every actor has stopped.
pub struct ActorsStopped(mpsc::Receiver<()>);

impl ActorsStopped {
    pub async fn wait(mut self) {
        while self.0.recv().await.is_some() {}
    }
}

impl Directory {
    /// The directory an actor belongs to.
    pub(super) fn of(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// What an instance (an object's, or a worker's) is given: limits, budget, clock, calls.
    pub fn instance_env(&self) -> InstanceEnv {
        let shared = &self.shared;
        InstanceEnv {
            event_cpu: shared.limits.event_cpu,
            memory_bytes: shared.limits.instance_memory_bytes,
            budget: shared.memory.clone(),
            clock: shared.clock.clone(),
            reach: Arc::new(self.clone()),
            call_timeout: shared.call_timeout,
            committer: shared.committer.clone(),
            halt: shared.halt.clone(),
        }
    }

    /// The directory of a runtime configured by `config`.
    pub fn new(
        classes: Arc<Classes>,
        committer: Committer,
        db: crate::storage::Store,
        config: &Config,
        metrics: Arc<Metrics>,
        remote: Option<super::remote::Remote>,
    ) -> (Self, ActorsStopped) {
        let limits = config.limits.clone();
        let (idle_timeout, hibernate_after) = (config.idle_timeout, config.hibernate_after);
        let clock = config.clock.clone();
        let (actors_done, stopped) = mpsc::channel(1);
        let pressure = Arc::new(Notify::new());
        let shared = Shared {
            memory: MemoryBudget::new(
                limits.memory_budget_bytes,
                pressure.clone(),
                metrics.instance_memory_bytes.clone(),
            ),
            classes,
            committer,
            db,
            live: Arc::new(Semaphore::new(limits.max_live_objects)),
            hibernate_after,
            clock,
            call_timeout: config.call_timeout,
            socket_limits: SocketLimits {
                max_message_bytes: limits.max_ws_message_bytes,
                max_event_outbox_bytes: limits.max_event_outbox_bytes,
                max_sockets: limits.max_sockets_per_object,
            },
            pressure,
            limits,
            idle_timeout,
            metrics,
            actors_done,
            reaper: Reaper::start(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            next_actor: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            halt: Arc::new(AtomicBool::new(false)),
            remote,
            evicting: Mutex::new(Vec::new()),
            retired: Default::default(),
        };
        (
            Self {
                shared: Arc::new(shared),
            },
            ActorsStopped(stopped),
        )
    }

    pub fn classes(&self) -> &Arc<Classes> {
        &self.shared.classes
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Delivers a request to the object and waits for its gated response.
    pub async fn fetch(
        &self,
        class: Arc<LoadedClass>,
        id: ObjectId,
        name: Option<String>,
        request: Request,
    ) -> Result<Response, ObjectError> {
        if let Some(remote) = &self.shared.remote
            && let Place::There(address) = remote.place(&id).await?
        {
            let name_for_here = name.clone();
            let request_here = request.clone();
            match remote.forward(address, &class, id, name, request).await? {
                Some(response) => return Ok(response),
                // The object moved here meanwhile.
                None => {
                    return self
                        .fetch_here(class, id, name_for_here, request_here)
                        .await;
                }
            }
        }
        self.fetch_here(class, id, name, request).await
    }

    /// Like `fetch`, for an object this node runs: a forwarded request, which must not travel
    /// again. In a cluster, an object of another node's shard is refused (`NotHere`).
    pub async fn fetch_here(
        &self,
        class: Arc<LoadedClass>,
        id: ObjectId,
        name: Option<String>,
        request: Request,
    ) -> Result<Response, ObjectError> {
        if !self.runs_here(&id) {
            return Err(ObjectError::NotHere);
        }
        let (reply, answer) = oneshot::channel();
        let key = class.key(id);
        self.deliver(
            key,
            class,
            Envelope::Fetch {
                request,
                name,
                reply,
            },
        )
        .await?;
        let gated = answer.await.map_err(|_| self.dropped_reply())?;
        gated.release().await?
    }

    /// Why an actor dropped an event's reply: the runtime is stopping, or the event hit an
    /// internal error (the actor logged it and reset the object).
    fn dropped_reply(&self) -> ObjectError {
        if self.shared.closing.load(Ordering::SeqCst) {
            ObjectError::ShuttingDown
        } else {
            ObjectError::Internal("the event failed inside the runtime".into())
        }
    }

    /// Cluster mode: stops the actors of every object for which `leaving` holds (their shards
    /// move to other nodes; no new event reaches them here), and waits until each has stopped,
    /// its commits durable: true then, false if `deadline` passed first.
    pub async fn evict_where(
        &self,
        leaving: impl Fn(&ObjectId) -> bool,
        deadline: Duration,
    ) -> bool {
        let mut evicted = Vec::new();
        for shard in &self.shared.shards {
            let mut objects = shard.lock().expect("directory lock");
            objects.retain(|key, mailbox| {
                let leaves = leaving(&key.id);
                if leaves {
                    evicted.push(mailbox.clone());
                }
                !leaves
            });
        }
        self.shared
            .evicting
            .lock()
            .expect("evicting lock")
            .extend(evicted.iter().cloned());
        let until = tokio::time::Instant::now() + deadline;
        for mailbox in &evicted {
            if let Ok(Ok(())) =
                tokio::time::timeout_at(until, mailbox.tx.send(Box::new(Envelope::Evict))).await
            {
                self.shared.metrics.queued_events.inc();
            }
        }
        // Also those another caller evicts: a shard is handed over only once none is left.
        loop {
            let left = {
                let mut evicting = self.shared.evicting.lock().expect("evicting lock");
                evicting.retain(|m| !m.tx.is_closed());
                evicting.len()
            };
            if left == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether this node runs the object with `id` (always, outside a cluster).
    pub fn runs_here(&self, id: &ObjectId) -> bool {
        self.shared.remote.as_ref().is_none_or(|r| r.is_here(id))
    }

    /// Cluster mode: the admin address of the node that runs the object with `id`, when that
    /// is another node (`None`: this one, or no cluster). Waits while its shard has no owner.
    pub async fn owner_elsewhere(&self, id: &ObjectId) -> Result<Option<Arc<str>>, ObjectError> {
        match &self.shared.remote {
            None => Ok(None),
            Some(remote) => match remote.place(id).await? {
                Place::Here => Ok(None),
                Place::There(address) => Ok(Some(address)),
            },
        }
    }

    /// What cuts off every running guest and SQL statement once set (the end of a stop's drain
    /// time): their events fail and their writes are discarded, so the actors stop at once. (A
    /// flag, not the directory: holding the directory would keep the actors' count open.)
    pub fn halt(&self) -> Arc<AtomicBool> {
        self.shared.halt.clone()
    }

    /// Stops accepting events and lets every actor finish what is queued, then stop.
    pub fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        for shard in &self.shared.shards {
            shard.lock().expect("directory lock").clear();
        }
    }

    /// Delivers the object's alarm scheduled for `at_ms` and waits for its durable outcome.
    /// After a failed `last_attempt` the object deletes the alarm itself.
    pub async fn alarm(
        &self,
        class: Arc<LoadedClass>,
        id: ObjectId,
        at_ms: i64,
        retry_count: u32,
        last_attempt: bool,
    ) -> Result<AlarmOutcome, ObjectError> {
        let (reply, answer) = oneshot::channel();
        let key = class.key(id);
        let envelope = Envelope::Alarm {
            at_ms,
            retry_count,
            last_attempt,
            reply,
        };
        self.deliver(key, class, envelope).await?;
        let gated = answer.await.map_err(|_| self.dropped_reply())?;
        Ok(gated.release().await?)
    }

    /// The sink of one accepted WebSocket's events: the object's mailbox.
    pub fn socket_owner(&self, class: Arc<LoadedClass>, id: ObjectId) -> Arc<dyn SocketOwner> {
        Arc::new(ObjectSockets {
            directory: self.clone(),
            class,
            id,
        })
    }

    async fn deliver_waiting(&self, key: ObjectKey, class: Arc<LoadedClass>, envelope: Envelope) {
        let mut envelope = Box::new(envelope);
        loop {
            let mailbox = {
                let shard =
                    &self.shared.shards[self.shared.hasher.hash_one(&key) as usize % SHARDS];
                let objects = shard.lock().expect("directory lock");
                objects.get(&key).filter(|m| !m.tx.is_closed()).cloned()
            };
            let Some(mailbox) = mailbox else {
                // No actor (it cannot retire with sockets open, so: shutting down).
                let _ = self.deliver(key, class, *envelope).await;
                return;
            };
            match mailbox.tx.send(envelope).await {
                Ok(()) => {
                    self.shared.metrics.queued_events.inc();
                    return;
                }
                Err(mpsc::error::SendError(back)) => envelope = back,
            }
            if self.shared.closing.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Deletes the object's storage and alarm, as an event of the object (see the actor's
    /// `edit`), and waits until that is durable; answers whether what it named was there.
    pub async fn edit(
        &self,
        class: Arc<LoadedClass>,
        id: ObjectId,
        name: Option<String>,
        edit: super::Edit,
    ) -> Result<bool, ObjectError> {
        let (reply, answer) = oneshot::channel();
        let key = class.key(id);
        let envelope = Envelope::Edit { edit, name, reply };
        self.deliver(key, class, envelope).await?;
        let gated = answer.await.map_err(|_| self.dropped_reply())?;
        gated.release().await?
    }

    /// What the object holds now, if it has an actor (`None`: nothing of it is in memory).
    pub async fn view(&self, class: Arc<LoadedClass>, id: ObjectId) -> Option<super::ObjectView> {
        let key = class.key(id);
        self.live(&key)?;
        let (reply, answer) = oneshot::channel();
        self.deliver(key, class, Envelope::View { reply })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// What the object's actor reports, if it has one now (it is in memory, or holds
    /// hibernated WebSockets).
    pub fn live(&self, key: &ObjectKey) -> Option<LiveObject> {
        let shard = &self.shared.shards[self.shared.hasher.hash_one(key) as usize % SHARDS];
        let objects = shard.lock().expect("directory lock");
        let meter = &objects.get(key).filter(|m| !m.tx.is_closed())?.meter;
        Some(LiveObject {
            websockets: meter.open_websockets(),
            last_event_ms: meter.last_event_ms(),
        })
    }

    /// What every object's events cost since this node started (those of objects whose totals
    /// are no longer kept one by one: per class), and per class.
    pub fn usage(&self) -> Metered {
        let (mut objects, folded) = self.shared.retired.snapshot();
        for shard in &self.shared.shards {
            let live = shard.lock().expect("directory lock");
            objects.extend(live.iter().map(|(key, m)| (key.clone(), m.meter.usage())));
        }
        let classes = super::meter::per_class(objects.iter().map(|(k, u)| (k, u)), &folded);
        Metered { objects, classes }
    }

    /// What one object's events cost since this node started, if it had any (its actor's
    /// meter, or the totals kept after it retired).
    pub fn usage_of(&self, key: &ObjectKey) -> Option<Usage> {
        let shard = &self.shared.shards[self.shared.hasher.hash_one(key) as usize % SHARDS];
        // Under the shard's lock: an actor that starts takes the kept totals over under it too.
        let objects = shard.lock().expect("directory lock");
        let usage = match objects.get(key) {
            Some(live) => Some(live.meter.usage()),
            None => self.shared.retired.of(key),
        };
        usage.filter(|usage| usage.events > 0)
    }

    /// Puts the event in the object's mailbox, starting its actor if it has none.
    async fn deliver(
        &self,
        key: ObjectKey,
        class: Arc<LoadedClass>,
        envelope: Envelope,
    ) -> Result<(), ObjectError> {
        if !self.runs_here(&key.id) {
            // Its shard moved (or is moving) to another node: nothing may run it here.
            return Err(ObjectError::NotHere);
        }
        let envelope = Box::new(envelope);
        let shard = &self.shared.shards[self.shared.hasher.hash_one(&key) as usize % SHARDS];
        let mut permit = None;
        loop {
            {
                let mut objects = shard.lock().expect("directory lock");
                if self.shared.closing.load(Ordering::SeqCst) {
                    return Err(ObjectError::ShuttingDown);
                }
                if let Some(mailbox) = objects.get(&key).filter(|m| !m.tx.is_closed()) {
                    return self.try_send(mailbox, envelope);
                }
                if let Some(permit) = permit.take() {
                    let mailbox = self.spawn_actor(key.clone(), class.clone(), permit);
                    let sent = self.try_send(&mailbox, envelope);
                    objects.insert(key.clone(), mailbox);
                    return sent;
                }
            }
            // No live actor: take a slot (waiting for idle objects to make room), then retry.
            permit = Some(self.acquire_live().await?);
        }
    }

    fn try_send(&self, mailbox: &Mailbox, envelope: Box<Envelope>) -> Result<(), ObjectError> {
        match mailbox.tx.try_send(envelope) {
            Ok(()) => {
                self.shared.metrics.queued_events.inc();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(ObjectError::Overloaded(self.shared.limits.mailbox_capacity))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ObjectError::ShuttingDown),
        }
    }

    /// A live-object slot. At the bound, evicts idle objects one at a time, least recently used
    /// first, and waits a little; 503 if none makes room.
    async fn acquire_live(&self) -> Result<OwnedSemaphorePermit, ObjectError> {
        let live = &self.shared.live;
        let deadline = tokio::time::Instant::now() + PRESSURE_WAIT;
        loop {
            if let Ok(permit) = live.clone().try_acquire_owned() {
                return Ok(permit);
            }
            // Idle actors wait on `pressure` and re-register after each event, so the waiter
            // notified first (FIFO) is the one idle the longest.
            self.shared.pressure.notify_one();
            let wait = (deadline - tokio::time::Instant::now()).min(EVICTION_POLL);
            match tokio::time::timeout(wait, live.clone().acquire_owned()).await {
                Ok(Ok(permit)) => return Ok(permit),
                Ok(Err(_)) => return Err(ObjectError::ShuttingDown),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(ObjectError::TooManyLive(
                        self.shared.limits.max_live_objects,
                    ));
                }
                Err(_) => {}
            }
        }
    }

    fn spawn_actor(
        &self,
        key: ObjectKey,
        class: Arc<LoadedClass>,
        permit: OwnedSemaphorePermit,
    ) -> Mailbox {
        let (tx, rx) = mpsc::channel(self.shared.limits.mailbox_capacity);
        let actor_id = self.shared.next_actor.fetch_add(1, Ordering::Relaxed);
        let meter = Arc::new(self.shared.retired.revive(&key));
        let shared = self.shared.clone();
        let actor = Actor::new(key, class, actor_id, rx, shared, permit, meter.clone());
        tokio::spawn(actor.run());
        Mailbox {
            tx,
            actor: actor_id,
            meter,
        }
    }
}

/// Routes one object's socket events into its mailbox.
struct ObjectSockets {
    directory: Directory,
    class: Arc<LoadedClass>,
    id: ObjectId,
}

impl ObjectSockets {
    fn key(&self) -> ObjectKey {
        self.class.key(self.id)
    }
}

impl SocketOwner for ObjectSockets {
    fn opened(&self, id: SocketId, tx: mpsc::Sender<Outgoing>) -> BoxFuture<'_, ()> {
        let envelope = Envelope::SocketOpened { id, tx };
        Box::pin(
            self.directory
                .deliver_waiting(self.key(), self.class.clone(), envelope),
        )
    }

    fn event(&self, id: SocketId, event: SocketEvent) -> BoxFuture<'_, ()> {
        let envelope = Envelope::Socket { id, event };
        Box::pin(
            self.directory
                .deliver_waiting(self.key(), self.class.clone(), envelope),
        )
    }
}

impl Shared {
    /// Removes an idle actor from the directory if nothing is queued for it; closes its mailbox.
    /// Returns whether it was retired.
    pub fn retire(
        &self,
        key: &ObjectKey,
        actor: u64,
        rx: &mut mpsc::Receiver<Box<Envelope>>,
    ) -> bool {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut objects = shard.lock().expect("directory lock");
        if !rx.is_empty() {
            return false;
        }
        if let Some(mailbox) = objects.get(key)
            && mailbox.actor == actor
        {
            // Under the lock: the object's next actor continues these totals.
            self.retired.retire(key, &mailbox.meter);
            objects.remove(key);
        }
        rx.close();
        true
    }
}
