//! Leases: which node may run which objects, decided by PostgreSQL.
//!
//! Objects map to [`SHARDS`] shards by their id. A node joins with a fresh incarnation and keeps
//! its `duro_nodes` row alive (`expires`, by PostgreSQL's clock) with a heartbeat every third
//! of the lease time. It claims a shard by writing its incarnation as the shard's owner, which
//! it may do only when the shard has no owner or its owner's node lease expired more than
//! [`GRACE`] ago. Every commit re-checks ownership inside its own transaction (`duro_fence`), so
//! a node that was paused or cut off can never commit after a takeover, whatever the clocks.
//!
//! Placement: each shard's preferred node is the live node that ranks first for it
//! (rendezvous hashing of the shard and the node names), so shards spread evenly over the nodes
//! that start together, and a failed node's shards spread over the survivors. Every tick a node
//! claims the free or expired shards it prefers, and publishes who owns what ([`ShardMap`]):
//! requests for objects of other nodes' shards are forwarded to them. Shards do not move while
//! their owner lives (a node that joins later takes shards as others leave or fail).
//!
//! Renewals: every [`period`] (a third of the lease, at most 1 s); a failed one (PostgreSQL
//! restarting, out of reach) is tried again every [`RETRY`], each attempt cut off after
//! [`attempt`] on a connection opened anew, so a database that comes back is seen within a
//! quarter second. The node may act until its lease, as of its last renewal's start, would
//! expire less a tenth (clock-rate drift): an outage up to about 0.9 × the lease − the period
//! − 0.25 s costs nothing (12.25 s of a 15 s lease).
//!
//! A node that loses its lease (its heartbeat refused, its own deadline passed, a commit fenced,
//! a shard it held owned by another) stops serving: it must not answer from state another node
//! may be changing. `duro serve` then starts over in place and joins again as a new incarnation
//! once PostgreSQL answers (see `cli::serve`).

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::Client;

use super::{Pg, describe, fail};
use crate::storage::BackendError;
use crate::storage::schema::CLASS_PREFIX_LEN;

/// Shards objects are spread over. Fixed forever: an object's shard is part of the data.
pub const SHARDS: u32 = 256;
/// How long past a node's lease its shards stay untouched (absorbs small clock-rate drift).
const GRACE: Duration = Duration::from_millis(500);
/// How soon a failed renewal is tried again.
pub const RETRY: Duration = Duration::from_millis(250);

/// How often a healthy node renews its lease and refreshes the shard map.
pub fn period(ttl: Duration) -> Duration {
    (ttl / 3).min(Duration::from_secs(1))
}

/// How long one renewal (or one refresh, whose claims may wait on a commit's row locks) may
/// take before its connection is given up: a quarter of the lease, 0.5 to 3 s.
pub fn attempt(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(500), Duration::from_secs(3))
}

/// Extends a node's lease by $3 ms, unless it expired (then another node may own its shards).
const RENEW: &str = "UPDATE duro_nodes SET expires = now() + $2::float8 * interval '1 millisecond' \
     WHERE incarnation = $1 AND expires > now()";

/// The shard of the object a key or prefix names (`[class (8)][id (32)]...`); `None` for a key
/// shorter than an object prefix. Ids are hashes, so their first bytes spread evenly.
pub fn shard_of(key: &[u8]) -> Option<i32> {
    let id = key.get(CLASS_PREFIX_LEN..CLASS_PREFIX_LEN + 4)?;
    let n = u32::from_be_bytes(id.try_into().ok()?);
    Some((n % SHARDS) as i32)
}

/// This node's standing: its incarnation, and whether it lost its lease (then why). Shared by
/// the heartbeat, the group writer and the server.
#[derive(Clone)]
pub struct Fence {
    incarnation: Arc<str>,
    lost: Arc<Mutex<Option<String>>>,
    signal: Arc<watch::Sender<Option<String>>>,
}

impl Fence {
    fn new(incarnation: String) -> Self {
        Self {
            incarnation: incarnation.into(),
            lost: Arc::default(),
            signal: Arc::new(watch::channel(None).0),
        }
    }

    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    /// Why the lease was lost, once it was.
    pub fn lost(&self) -> Option<String> {
        crate::lock(&self.lost).clone()
    }

    /// Records that the lease is lost (the first reason stays) and tells whoever watches.
    pub fn lose(&self, reason: String) {
        let mut lost = crate::lock(&self.lost);
        if lost.is_none() {
            tracing::error!(%reason, "this node lost its lease");
            *lost = Some(reason.clone());
            self.signal.send_replace(Some(reason));
        }
    }

    /// Turns `Some(reason)` when the lease is lost.
    pub fn watch(&self) -> watch::Receiver<Option<String>> {
        self.signal.subscribe()
    }
}

/// How a node takes part in the cluster.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// This node's name (unique in the cluster).
    pub node: String,
    /// Where other nodes reach it.
    pub address: String,
    /// How long a heartbeat keeps the node's lease.
    pub ttl: Duration,
}

/// A node's membership: its connection for leases and its fence.
pub struct Lease {
    pg: Arc<Pg>,
    /// `None` (or closed) after it failed or timed out: the next use opens a new one.
    client: Mutex<Option<Arc<Client>>>,
    config: LeaseConfig,
    fence: Fence,
    map: Arc<ShardMap>,
    /// Set by a graceful stop: the node claims nothing and hands every shard over.
    leaving: std::sync::atomic::AtomicBool,
}

fn random_incarnation() -> String {
    crate::ids::random_hex(16)
}

impl Lease {
    /// Joins the cluster as a new incarnation of `config.node`.
    pub fn join(pg: Arc<Pg>, config: LeaseConfig) -> Result<Self, BackendError> {
        let client = Arc::new(pg.dedicated()?);
        let fence = Fence::new(random_incarnation());
        let ttl_ms = config.ttl.as_millis() as i64;
        let (c, node, inc, address) = (
            client.clone(),
            config.node.clone(),
            fence.incarnation().to_string(),
            config.address.clone(),
        );
        pg.block(async move {
            let n = SHARDS as i32;
            c.execute(
                "INSERT INTO duro_shards (shard) SELECT generate_series(0, $1 - 1) \
                 ON CONFLICT DO NOTHING",
                &[&n],
            )
            .await?;
            // Rows of incarnations long gone go; a restarted node's previous incarnation keeps
            // its row (and its shards) until its lease expires: it may still be committing.
            c.execute(
                "DELETE FROM duro_nodes WHERE expires < now() - interval '1 hour'",
                &[],
            )
            .await?;
            c.execute(
                "INSERT INTO duro_nodes (incarnation, node, address, expires) \
                 VALUES ($1, $2, $3, now() + $4::float8 * interval '1 millisecond')",
                &[&inc, &node, &address, &(ttl_ms as f64)],
            )
            .await
        })
        .map_err(|e| fail(format!("joining the cluster: {}", describe(&e))))?;
        Ok(Self {
            pg,
            client: Mutex::new(Some(client)),
            config,
            fence,
            map: Arc::new(ShardMap::default()),
            leaving: Default::default(),
        })
    }

    /// The connection for leases, opened anew when there is none or it closed.
    async fn connection(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        let current = crate::lock(&self.client).clone();
        if let Some(client) = current
            && !client.is_closed()
        {
            return Ok(client);
        }
        let fresh = Arc::new(self.pg.open().await?);
        *crate::lock(&self.client) = Some(fresh.clone());
        Ok(fresh)
    }

    /// Gives the connection up (an attempt on it failed or hung): the next use opens another.
    fn drop_connection(&self) {
        *crate::lock(&self.client) = None;
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Renews this node's lease. `Ok(false)`: PostgreSQL refused (the lease expired; another
    /// node may own this node's shards now).
    async fn renew(&self) -> Result<bool, tokio_postgres::Error> {
        let c = self.connection().await?;
        let me = self.fence.incarnation().to_string();
        let ttl_ms = self.config.ttl.as_millis() as f64;
        Ok(c.execute(RENEW, &[&me, &ttl_ms]).await? == 1)
    }

    /// One round of membership: renews the lease, then (if it was renewed) [`Self::refresh`].
    async fn tick(&self) -> Result<bool, tokio_postgres::Error> {
        if !self.renew().await? {
            return Ok(false);
        }
        self.refresh().await?;
        Ok(true)
    }

    /// Claims the free or expired shards this node prefers, and publishes who owns what.
    async fn refresh(&self) -> Result<(), tokio_postgres::Error> {
        let c = self.connection().await?;
        let me = self.fence.incarnation().to_string();
        let live: Vec<(String, String)> = c
            .query(
                "SELECT incarnation, node FROM duro_nodes WHERE expires > now()",
                &[],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let leaving = self.leaving.load(std::sync::atomic::Ordering::SeqCst);
        let wanted: Vec<i32> = (0..SHARDS as i32)
            .filter(|shard| !leaving && preferred(*shard, &live) == Some(me.as_str()))
            .collect();
        let grace_ms = GRACE.as_millis() as f64;
        c.execute(
            "UPDATE duro_shards SET owner = $1, epoch = epoch + 1 \
             WHERE shard = ANY($2) AND owner IS DISTINCT FROM $1 AND (owner IS NULL OR owner NOT IN ( \
               SELECT incarnation FROM duro_nodes \
               WHERE expires + $3::float8 * interval '1 millisecond' > now()))",
            &[&me, &wanted, &grace_ms],
        )
        .await?;
        let rows = c
            .query(
                "SELECT s.shard, s.owner, n.address FROM duro_shards s \
                 LEFT JOIN duro_nodes n ON n.incarnation = s.owner AND n.expires > now() \
                 ORDER BY s.shard",
                &[],
            )
            .await?;
        let mut routes = vec![Route::Nobody; SHARDS as usize];
        for row in &rows {
            let shard: i32 = row.get(0);
            let owner: Option<String> = row.get(1);
            let address: Option<String> = row.get(2);
            let Some(slot) = routes.get_mut(shard as usize) else {
                continue;
            };
            *slot = match (owner, address) {
                (Some(owner), _) if owner == me => Route::Here,
                (Some(_), Some(address)) => Route::There(address.into()),
                _ => Route::Nobody,
            };
        }
        // Shards of this node that rank another live node first move there (drained first,
        // see `Held::hand_over`).
        for (shard, route) in routes.iter_mut().enumerate() {
            let preferred = preferred(shard as i32, &live);
            if *route == Route::Here && (leaving || preferred.is_some_and(|p| p != me)) {
                *route = Route::Leaving;
            }
        }
        if let Some(shard) = self.map.taken(&routes) {
            self.fence.lose(format!(
                "another node owns shard {shard}, which this node held"
            ));
            return Ok(());
        }
        self.map.publish(routes);
        Ok(())
    }

    /// Takes this node's first shards (all of them on a new cluster), so that it serves at
    /// once. Blocks. It first waits a moment (a third of the lease time, at most 1 s), so that
    /// nodes started together see each other and share the free shards: shards do not move
    /// while their owner lives.
    pub fn start(self) -> Result<Held, BackendError> {
        std::thread::sleep((self.config.ttl / 3).min(Duration::from_secs(1)));
        let lease = Arc::new(self);
        let first = lease.clone();
        let renewed = lease
            .pg
            .block(async move { first.tick().await })
            .map_err(|e| fail(format!("joining the cluster: {}", describe(&e))))?;
        if !renewed {
            return Err(fail(
                "this node's lease expired as it joined; start it again",
            ));
        }
        let held = lease.map.held();
        tracing::info!(node = %lease.config.node, shards = held, "joined the cluster");
        Ok(lease.keep())
    }

    /// Keeps the lease alive from the connections' thread until it is lost: a renewal every
    /// [`period`], a failed one tried again every [`RETRY`] on a new connection, each attempt
    /// cut off after [`attempt`]. A refused renewal, or the deadline passed without one (a
    /// pause, an outage longer than the lease allows), loses the lease.
    fn keep(self: Arc<Self>) -> Held {
        let lease = self;
        let held = Held(lease.clone());
        let runtime = lease.pg.runtime().clone();
        runtime.spawn(async move {
            let ttl = lease.config.ttl;
            let (period, attempt) = (period(ttl), attempt(ttl));
            let mut last_renewed = Instant::now();
            let mut failing_since: Option<Instant> = None;
            let mut wait = period;
            loop {
                tokio::time::sleep(wait).await;
                if lease.fence.lost().is_some() {
                    return;
                }
                // The node may act only until its lease, renewed at `last_renewed`, would
                // expire (minus a margin for clock-rate drift).
                let deadline = last_renewed + ttl - ttl / 10;
                let started = Instant::now();
                if started >= deadline {
                    lease.fence.lose(format!(
                        "no lease renewal for {} ms (a pause, or PostgreSQL out of reach)",
                        last_renewed.elapsed().as_millis()
                    ));
                    return;
                }
                let renewed = tokio::time::timeout(attempt.min(deadline - started), lease.renew());
                let failure = match renewed.await {
                    Ok(Ok(true)) => {
                        last_renewed = started;
                        wait = period;
                        if let Some(since) = failing_since.take() {
                            tracing::info!(
                                ms = since.elapsed().as_millis() as u64,
                                "the lease is renewed again"
                            );
                        }
                        match tokio::time::timeout(attempt, lease.refresh()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => {
                                tracing::warn!(error = %describe(&error), "refreshing the shard map failed; next round");
                                lease.drop_connection();
                            }
                            Err(_) => {
                                tracing::warn!("refreshing the shard map timed out; next round");
                                lease.drop_connection();
                            }
                        }
                        continue;
                    }
                    Ok(Ok(false)) => {
                        lease
                            .fence
                            .lose("PostgreSQL refused this node's lease renewal".into());
                        return;
                    }
                    Ok(Err(error)) => describe(&error),
                    Err(_) => format!("no answer within {} ms", attempt.as_millis()),
                };
                lease.drop_connection();
                wait = RETRY;
                if failing_since.is_none() {
                    failing_since = Some(started);
                    tracing::warn!(
                        error = %failure,
                        left_ms = (deadline - started).as_millis() as u64,
                        "a lease renewal failed; retrying every {} ms",
                        RETRY.as_millis()
                    );
                } else {
                    tracing::debug!(error = %failure, "a lease renewal failed again");
                }
            }
        });
        held
    }
}

/// Where a shard's objects run, as the last tick saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// On this node.
    Here,
    /// On the node whose internal (admin) listener is at this address.
    There(Arc<str>),
    /// Nowhere yet: its owner failed or left and no node claimed it yet.
    Nobody,
    /// Still this node's, but moving to the node that ranks first for it: its objects are
    /// being evicted here, and no new event starts here (events wait for the next owner).
    Leaving,
}

/// Who owns which shard; updated by every tick.
pub struct ShardMap {
    routes: RwLock<Arc<Vec<Route>>>,
    /// Woken by every change (waiters for a shard with no owner, the alarm scheduler).
    published: tokio::sync::Notify,
}

impl Default for ShardMap {
    fn default() -> Self {
        Self {
            routes: RwLock::new(Arc::new(vec![Route::Nobody; SHARDS as usize])),
            published: tokio::sync::Notify::new(),
        }
    }
}

impl ShardMap {
    /// Where the objects of `shard` run.
    pub fn route(&self, shard: i32) -> Route {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        routes.get(shard as usize).cloned().unwrap_or(Route::Nobody)
    }

    /// Where the object with this id runs.
    pub fn route_of(&self, id: &crate::ids::ObjectId) -> Route {
        self.route(shard_of_id(id))
    }

    /// Resolves at the next change of the map.
    pub async fn changed(&self) {
        self.published.notified().await;
    }

    /// How many shards this node holds.
    pub fn held(&self) -> usize {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        routes.iter().filter(|r| **r == Route::Here).count()
    }

    /// The shards this node is handing over.
    pub fn leaving(&self) -> Vec<i32> {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (routes.iter().enumerate())
            .filter(|(_, r)| **r == Route::Leaving)
            .map(|(shard, _)| shard as i32)
            .collect()
    }

    /// A shard this node held (not handing over) that `next` gives to another node, if any.
    fn taken(&self, next: &[Route]) -> Option<usize> {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        routes.iter().zip(next).position(|(was, now)| {
            *was == Route::Here && !matches!(now, Route::Here | Route::Leaving)
        })
    }

    fn publish(&self, routes: Vec<Route>) {
        let mut current = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if **current != routes {
            *current = Arc::new(routes);
            drop(current);
            self.published.notify_waiters();
        }
    }
}

/// The shard of the object with this id (see [`shard_of`]).
pub fn shard_of_id(id: &crate::ids::ObjectId) -> i32 {
    let n = u32::from_be_bytes(id.as_bytes()[..4].try_into().expect("4 bytes"));
    (n % SHARDS) as i32
}

/// The live node that ranks first for `shard` (rendezvous hashing over node names, ties broken
/// by incarnation): `live` is (incarnation, node name).
fn preferred(shard: i32, live: &[(String, String)]) -> Option<&str> {
    live.iter()
        .max_by_key(|(incarnation, node)| (rank(shard, node), incarnation.clone()))
        .map(|(incarnation, _)| incarnation.as_str())
}

/// A node's rank for a shard: FNV-1a of the name, mixed with the shard (splitmix64).
fn rank(shard: i32, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes() {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h ^ (shard as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A lease being kept (see [`Lease::start`]).
#[derive(Clone)]
pub struct Held(Arc<Lease>);

impl Held {
    pub fn fence(&self) -> &Fence {
        &self.0.fence
    }

    /// Who owns which shard, as this node last saw it.
    pub fn map(&self) -> &Arc<ShardMap> {
        &self.0.map
    }

    /// Releases `shards` (still handed over: drained of their objects, their commits durable),
    /// for the node that ranks first for them to claim. Blocks.
    pub fn hand_over(&self, shards: &[i32]) {
        let lease = &self.0;
        let still: Vec<i32> = (shards.iter().copied())
            .filter(|s| lease.map.route(*s) == Route::Leaving)
            .collect();
        if still.is_empty() {
            return;
        }
        let (held, me) = (self.clone(), lease.fence.incarnation().to_string());
        let released = lease.pg.block(async move {
            let c = held.0.connection().await?;
            c.execute(
                "UPDATE duro_shards SET owner = NULL WHERE shard = ANY($1) AND owner = $2",
                &[&still, &me],
            )
            .await
        });
        match released {
            Ok(0) => {}
            Ok(count) => tracing::info!(
                shards = count,
                "handed shards over to the node that ranks first for them"
            ),
            Err(e) => {
                tracing::warn!(error = %describe(&e), "could not hand shards over; retrying at the next tick")
            }
        }
    }

    /// Starts a graceful leave: from now on this node claims nothing, and every shard it holds
    /// is handed over like a rebalanced one (no new event starts here).
    pub fn leave(&self) {
        let lease = &self.0;
        lease
            .leaving
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let routes = lease
            .map
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let leaving = (routes.iter())
            .map(|r| {
                if *r == Route::Here {
                    Route::Leaving
                } else {
                    r.clone()
                }
            })
            .collect();
        lease.map.publish(leaving);
    }

    /// How long peers may take to see a change of the map (one period).
    pub fn tick(&self) -> Duration {
        period(self.0.config.ttl)
    }

    /// Hands this node's shards over (a graceful leave, after its last commit): they are free
    /// at once instead of after the lease expires. Blocks.
    pub fn release(&self) {
        let lease = &self.0;
        // Commits after this are refused; nothing watching is told (this is no loss).
        crate::lock(&lease.fence.lost).get_or_insert_with(|| "this node left the cluster".into());
        let (held, me) = (self.clone(), lease.fence.incarnation().to_string());
        let released = lease.pg.block(async move {
            let c = held.0.connection().await?;
            c.execute(
                "UPDATE duro_shards SET owner = NULL WHERE owner = $1",
                &[&me],
            )
            .await?;
            c.execute("DELETE FROM duro_nodes WHERE incarnation = $1", &[&me])
                .await
        });
        match released {
            Ok(_) => tracing::info!("handed this node's shards over"),
            Err(e) => {
                tracing::warn!(error = %describe(&e), "could not hand the shards over; they move when the lease expires")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_over_the_live_nodes_and_a_failed_nodes_shards_over_the_rest() {
        let nodes = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| (format!("i-{n}"), n.to_string()))
                .collect()
        };
        let three = nodes(&["n1", "n2", "n3"]);
        let owner = |live: &[(String, String)], s| preferred(s, live).unwrap().to_string();
        let mut counts = std::collections::HashMap::new();
        for s in 0..SHARDS as i32 {
            *counts.entry(owner(&three, s)).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(
            counts.values().all(|&n| (50..=120).contains(&n)),
            "{counts:?}"
        );
        // Without n3, n3's shards move and no other shard does.
        let two = nodes(&["n1", "n2"]);
        for s in 0..SHARDS as i32 {
            if owner(&three, s) != "i-n3" {
                assert_eq!(owner(&three, s), owner(&two, s));
            }
        }
    }
}
