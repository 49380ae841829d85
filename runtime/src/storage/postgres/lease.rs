//! Leases: which node may run which objects, decided by PostgreSQL.
//!
//! Objects map to [`SHARDS`] shards by their id. A node joins with a fresh incarnation and keeps
//! its `duro_nodes` row alive (`expires`, by PostgreSQL's clock) with a heartbeat every third
//! of the lease time. It claims a shard by writing its incarnation as the shard's owner, which
//! it may do only when the shard has no owner or its owner's node lease expired more than
//! [`GRACE`] ago. Every commit re-checks ownership inside its own transaction (`duro_fence`), so
//! a node that was paused or cut off can never commit after a takeover, whatever the clocks.
//!
//! This first cluster mode runs one active node: a node takes every shard before it serves, and
//! waits (standby) while another live node holds them. A node that loses its lease (its
//! heartbeat refused, its own deadline passed, a commit fenced) stops: it must not answer from
//! state another node may be changing, and a restart joins again as a new incarnation.

use std::sync::{Arc, Mutex};
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
    client: Arc<Client>,
    config: LeaseConfig,
    fence: Fence,
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
            client,
            config,
            fence,
        })
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Claims every shard that is free or whose owner's lease expired; the number this node
    /// holds afterwards.
    fn claim(&self) -> Result<u32, BackendError> {
        let (c, me) = (self.client.clone(), self.fence.incarnation().to_string());
        let grace_ms = GRACE.as_millis() as f64;
        let held: i64 = self
            .pg
            .block(async move {
                c.execute(
                    "UPDATE duro_shards SET owner = $1, epoch = epoch + 1 \
                     WHERE owner IS DISTINCT FROM $1 AND (owner IS NULL OR owner NOT IN ( \
                       SELECT incarnation FROM duro_nodes \
                       WHERE expires + $2::float8 * interval '1 millisecond' > now()))",
                    &[&me, &grace_ms],
                )
                .await?;
                let row = c
                    .query_one("SELECT count(*) FROM duro_shards WHERE owner = $1", &[&me])
                    .await?;
                Ok::<i64, tokio_postgres::Error>(row.get(0))
            })
            .map_err(|e| fail(format!("claiming shards: {}", describe(&e))))?;
        Ok(held as u32)
    }

    /// Renews this node's lease; false when PostgreSQL refused (it expired: another node may
    /// own its shards now).
    fn renew(&self) -> Result<bool, BackendError> {
        let (c, me) = (self.client.clone(), self.fence.incarnation().to_string());
        let ttl_ms = self.config.ttl.as_millis() as f64;
        let renewed = self
            .pg
            .block(async move { c.execute(RENEW, &[&me, &ttl_ms]).await })
            .map_err(|e| fail(format!("renewing the lease: {}", describe(&e))))?;
        Ok(renewed == 1)
    }

    /// Waits (renewing this node's own lease) until it holds every shard: at once on a new
    /// cluster, or once the active node's lease has expired. Blocks.
    pub fn acquire_all(&self) -> Result<(), BackendError> {
        let mut said = false;
        loop {
            if !self.renew()? {
                return Err(fail(
                    "this node's lease expired while it waited; start it again",
                ));
            }
            let held = self.claim()?;
            if held == SHARDS {
                tracing::info!(node = %self.config.node, shards = SHARDS, "holding every shard: active");
                return Ok(());
            }
            if !said {
                tracing::info!(
                    node = %self.config.node,
                    held,
                    "standby: another node holds the shards; taking over when its lease expires"
                );
                said = true;
            }
            std::thread::sleep(self.config.ttl / 3);
        }
    }

    /// Keeps the lease alive from the connections' thread until it is lost: the heartbeat
    /// renews every third of the lease time; a refused renewal, or a deadline passed without
    /// one (a pause, a cut), loses the lease.
    pub fn keep(self) -> Held {
        let lease = Arc::new(self);
        let held = Held(lease.clone());
        let runtime = lease.pg.runtime().clone();
        runtime.spawn(async move {
            let ttl = lease.config.ttl;
            let mut last_renewed = Instant::now();
            loop {
                tokio::time::sleep(ttl / 3).await;
                if lease.fence.lost().is_some() {
                    return;
                }
                // The node may act only until its lease, renewed at `last_renewed`, would
                // expire (minus a margin for clock-rate drift).
                let deadline = last_renewed + ttl - ttl / 10;
                if Instant::now() >= deadline {
                    lease.fence.lose(format!(
                        "no lease renewal for {} ms (a pause, or PostgreSQL out of reach)",
                        last_renewed.elapsed().as_millis()
                    ));
                    return;
                }
                let started = Instant::now();
                let me = lease.fence.incarnation().to_string();
                let ttl_ms = ttl.as_millis() as f64;
                let renewed = lease.client.execute(RENEW, &[&me, &ttl_ms]).await;
                match renewed {
                    Ok(1) => last_renewed = started,
                    Ok(_) => {
                        lease
                            .fence
                            .lose("PostgreSQL refused this node's lease renewal".into());
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(error = %describe(&error), "a lease renewal failed; retrying");
                    }
                }
            }
        });
        held
    }
}

/// A lease being kept (see [`Lease::keep`]).
pub struct Held(Arc<Lease>);

impl Held {
    pub fn fence(&self) -> &Fence {
        &self.0.fence
    }

    /// Hands this node's shards over (a graceful leave, after its last commit): they are free
    /// at once instead of after the lease expires. Blocks.
    pub fn release(&self) {
        let lease = &self.0;
        // Commits after this are refused; nothing watching is told (this is no loss).
        crate::lock(&lease.fence.lost).get_or_insert_with(|| "this node left the cluster".into());
        let (c, me) = (lease.client.clone(), lease.fence.incarnation().to_string());
        let released = lease.pg.block(async move {
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
