//! Time as alarms and guests see it: the system's wall clock, or a manual clock that tests move
//! by hand, so that "fires at, never before, its time" and retry backoffs are checked without
//! waiting for the wall clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// Milliseconds since the Unix epoch. Cheap to clone.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Manual>>);

struct Manual {
    now_ms: AtomicI64,
    moved: Notify,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => write!(f, "Clock::system"),
            Some(manual) => write!(f, "Clock::manual({})", manual.now_ms.load(Ordering::SeqCst)),
        }
    }
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stands at `start_ms` until [`Clock::advance`] moves it.
    pub fn manual(start_ms: i64) -> Self {
        Self(Some(Arc::new(Manual {
            now_ms: AtomicI64::new(start_ms),
            moved: Notify::new(),
        })))
    }

    pub fn is_manual(&self) -> bool {
        self.0.is_some()
    }

    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            None => system_ms(),
            Some(manual) => manual.now_ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward (a system clock ignores it) and wakes its sleepers.
    pub fn advance(&self, by: Duration) {
        if let Some(manual) = &self.0 {
            let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            manual.now_ms.fetch_add(by, Ordering::SeqCst);
            manual.moved.notify_waiters();
        }
    }

    /// Sleeps until the clock reads at least `at_ms`.
    pub async fn sleep_until(&self, at_ms: i64) {
        match &self.0 {
            None => {
                let wait = u64::try_from(at_ms.saturating_sub(system_ms())).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Some(manual) => loop {
                let moved = manual.moved.notified();
                if manual.now_ms.load(Ordering::SeqCst) >= at_ms {
                    return;
                }
                moved.await;
            },
        }
    }
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The clock as a guest's `wasi:clocks/wall-clock` (only installed for a manual clock).
impl wasmtime_wasi::HostWallClock for Clock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.now_ms()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_told_and_wakes_its_sleepers() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(1_500).await }
        });
        clock.advance(Duration::from_millis(400));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_millis(100));
        sleeper.await.unwrap();
        assert_eq!(clock.now_ms(), 1_500);
        assert!(Clock::system().now_ms() > 1_700_000_000_000);
    }
}
