//! Instance memory: each store's cap on its own linear memory and tables, and the runtime-wide
//! budget that all live instances' linear memory shares (with the SQL connections' page caches).
//!
//! Every byte an instance's memories grow by (their initial size included) is reserved from the
//! [`MemoryBudget`] and given back when the store is dropped (eviction, hibernation, reset). When
//! a growth does not fit, idle objects are asked to retire (the directory's pressure signal) and
//! the growth waits for their memory, up to [`BUDGET_WAIT`]; then it fails, the guest traps and the
//! caller gets 503 with `Retry-After`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use wasmtime::ResourceLimiterAsync;

/// How long a growth waits for idle objects to give memory back before it fails.
const BUDGET_WAIT: Duration = Duration::from_secs(1);
/// How long one eviction request is given before the next idle object is asked.
const EVICTION_POLL: Duration = Duration::from_millis(5);
/// Largest table (function references) a guest may grow to; guards host memory.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Linear memory of all live instances together. Shared by every store.
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    /// Signalled when memory is given back.
    released: Notify,
    /// Asks one idle object to retire (the directory's live-object pressure).
    pressure: Arc<Notify>,
    /// Mirrors `used` for `/metrics`.
    gauge: Gauge,
}

impl MemoryBudget {
    pub fn new(limit: usize, pressure: Arc<Notify>, gauge: Gauge) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            released: Notify::new(),
            pressure,
            gauge,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved by live instances now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_reserve(&self, bytes: usize) -> bool {
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok();
        if reserved {
            self.gauge.inc_by(bytes as i64);
        }
        reserved
    }

    /// Reserves `bytes`, evicting idle objects and waiting for them if needed. `false` when the
    /// budget stays full for [`BUDGET_WAIT`].
    async fn reserve(&self, bytes: usize) -> bool {
        if self.try_reserve(bytes) {
            return true;
        }
        let deadline = tokio::time::Instant::now() + BUDGET_WAIT;
        loop {
            let released = self.released.notified();
            if self.try_reserve(bytes) {
                return true;
            }
            self.pressure.notify_one();
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let _ = tokio::time::timeout((deadline - now).min(EVICTION_POLL), released).await;
        }
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            self.gauge.dec_by(bytes as i64);
            self.released.notify_waiters();
        }
    }
}

/// SQL connections' page caches are counted in the budget too; one that does not fit now asks an
/// idle object to retire and fails (the SQL call can be retried), since opening is synchronous.
impl crate::storage::sql::MemoryAccount for MemoryBudget {
    fn try_reserve(&self, bytes: usize) -> bool {
        let reserved = MemoryBudget::try_reserve(self, bytes);
        if !reserved {
            self.pressure.notify_one();
        }
        reserved
    }

    fn release(&self, bytes: usize) {
        MemoryBudget::release(self, bytes);
    }
}

/// One store's limiter: its own memory cap, its share of the budget, and which limit stopped a
/// growth (so the trap that follows is reported as that limit).
pub struct MemoryGuard {
    limit: usize,
    budget: Arc<MemoryBudget>,
    /// Bytes this store holds of the budget.
    held: usize,
    /// A growth went past `limit`.
    pub hit_limit: bool,
    /// A growth did not fit in the budget.
    pub hit_budget: bool,
}

impl MemoryGuard {
    /// The linear memory the store holds now.
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn new(limit: usize, budget: Arc<MemoryBudget>) -> Self {
        Self {
            limit,
            budget,
            held: 0,
            hit_limit: false,
            hit_budget: false,
        }
    }
}

#[async_trait::async_trait]
impl ResourceLimiterAsync for MemoryGuard {
    async fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit_limit = true;
            return Ok(false);
        }
        let extra = desired.saturating_sub(current);
        if !self.budget.reserve(extra).await {
            self.hit_budget = true;
            return Ok(false);
        }
        self.held += extra;
        Ok(true)
    }

    async fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl Drop for MemoryGuard {
    fn drop(&mut self) {
        self.budget.release(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn growth_past_the_budget_asks_idle_objects_then_fails() {
        let pressure = Arc::new(Notify::new());
        let budget = MemoryBudget::new(100, pressure.clone(), Gauge::default());
        let mut a = MemoryGuard::new(80, budget.clone());
        assert!(a.memory_growing(0, 60, None).await.unwrap());
        let mut b = MemoryGuard::new(80, budget.clone());
        // Over its own cap: refused at once, as the memory limit.
        assert!(!b.memory_growing(0, 90, None).await.unwrap());
        assert!(b.hit_limit && !b.hit_budget);
        // Over the budget while `a` holds 60: refused after the wait, as the budget.
        assert!(!b.memory_growing(0, 50, None).await.unwrap());
        assert!(b.hit_budget);
        assert_eq!(budget.used(), 60);
        // `a` goes (an idle object evicted on the pressure signal): `b` fits while waiting.
        let evict = tokio::spawn(async move {
            pressure.notified().await;
            drop(a);
        });
        let mut c = MemoryGuard::new(80, budget.clone());
        assert!(c.memory_growing(0, 50, None).await.unwrap());
        evict.await.unwrap();
        assert_eq!(budget.used(), 50);
        drop((b, c));
        assert_eq!(budget.used(), 0);
    }
}
