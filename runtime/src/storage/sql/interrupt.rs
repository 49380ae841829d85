//! How long one SQL call may run, and on which thread. SQLite runs synchronously inside the
//! guest's host call, so a statement is bounded from inside: a progress handler, called every
//! [`CHECK_OPS`] virtual-machine steps, interrupts it once its deadline passes (the event's CPU
//! time is spent) or the runtime stops. A statement may also not hold a runtime thread that
//! other objects need: on an async worker thread it first runs for at most [`SLICE`]; one that
//! needs longer is rolled back and run again whole with the runtime's thread handed to the other
//! tasks (`block_in_place`) — a long statement costs its slice twice (and reads its pages
//! again), a short one nothing. Off the async threads, at most as many long statements run at
//! once as the machine has cores ([`long_slot`]); the others wait, and their wait is not
//! charged to their events.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Virtual-machine steps between two looks at the clock (a look costs ~25 ns; a step ~10 ns).
const CHECK_OPS: i32 = 1000;
/// How long a statement runs on an async worker thread before it moves off it.
pub const SLICE: Duration = Duration::from_millis(5);

/// What bounds one SQL call: the running event's CPU time left, and the runtime's stop.
#[derive(Debug, Clone, Copy)]
pub struct SqlBudget<'a> {
    pub cpu: Duration,
    /// Set when the runtime stops: every statement is cut off.
    pub halt: Option<&'a Arc<AtomicBool>>,
    /// Where the call adds the time it waited for a place to run a long statement (not the
    /// event's to pay).
    pub waited: Option<&'a Cell<Duration>>,
}

impl SqlBudget<'static> {
    /// No CPU bound and no stop (storage tests, tools).
    pub const fn unbounded() -> Self {
        Self {
            cpu: Duration::from_secs(365 * 24 * 3600),
            halt: None,
            waited: None,
        }
    }
}

/// Long statements running off the async threads now.
static LONG: Mutex<usize> = Mutex::new(0);
static LONG_FREED: Condvar = Condvar::new();

/// A long statement's place to run (see [`long_slot`]), given back when dropped.
pub struct LongSlot(());

impl Drop for LongSlot {
    fn drop(&mut self) {
        *LONG.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        LONG_FREED.notify_one();
    }
}

/// Waits (blocking: it runs off the async threads) for a place to run a long statement: at most
/// one per core at once. `None` if the runtime stops meanwhile; else the place and how long it
/// waited.
pub fn long_slot(halt: Option<&AtomicBool>) -> Option<(LongSlot, Duration)> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let mut running = LONG.lock().unwrap_or_else(|e| e.into_inner());
    while *running >= cores {
        if halt.is_some_and(|h| h.load(Ordering::Relaxed)) {
            return None;
        }
        running = LONG_FREED
            .wait_timeout(running, Duration::from_millis(50))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    *running += 1;
    Some((LongSlot(()), started.elapsed()))
}

/// Why a statement was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Its slice on an async worker thread ended: run it again off that thread.
    Slice,
    /// The event's CPU time is spent.
    CpuLimit,
    /// The runtime is stopping.
    Halted,
}

/// A connection's interrupt state, shared with its progress handler.
#[derive(Clone, Default)]
pub struct Interrupter(Arc<State>);

#[derive(Default)]
struct State {
    /// Nanoseconds since [`base`] at which the running call is cut off.
    deadline: AtomicU64,
    /// What reaching the deadline means (a [`Cut`] as u8).
    at_deadline: AtomicU8,
    /// Why the last statement was cut off (0: it was not).
    cut: AtomicU8,
    halt: OnceLock<Arc<AtomicBool>>,
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn nanos(at: Instant) -> u64 {
    at.saturating_duration_since(base()).as_nanos() as u64
}

fn encode(cut: Cut) -> u8 {
    match cut {
        Cut::Slice => 1,
        Cut::CpuLimit => 2,
        Cut::Halted => 3,
    }
}

fn decode(code: u8) -> Option<Cut> {
    match code {
        1 => Some(Cut::Slice),
        2 => Some(Cut::CpuLimit),
        3 => Some(Cut::Halted),
        _ => None,
    }
}

impl Interrupter {
    /// Installs the progress handler on `conn`.
    pub fn install(&self, conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
        let state = self.0.clone();
        conn.progress_handler(
            CHECK_OPS,
            Some(move || {
                let cut = if state.halt.get().is_some_and(|h| h.load(Ordering::Relaxed)) {
                    Cut::Halted
                } else if nanos(Instant::now()) >= state.deadline.load(Ordering::Relaxed) {
                    match decode(state.at_deadline.load(Ordering::Relaxed)) {
                        Some(cut) => cut,
                        None => return false,
                    }
                } else {
                    return false;
                };
                state.cut.store(encode(cut), Ordering::Relaxed);
                true
            }),
        )
    }

    /// Arms the handler for one call: cut off at `deadline`, as `cut`; `halt` is the runtime's
    /// stop (it never changes for a connection).
    pub fn arm(&self, deadline: Instant, cut: Cut, halt: Option<&Arc<AtomicBool>>) {
        if let Some(halt) = halt {
            let _ = self.0.halt.get_or_init(|| halt.clone());
        }
        self.0.cut.store(0, Ordering::Relaxed);
        self.0.at_deadline.store(encode(cut), Ordering::Relaxed);
        self.0.deadline.store(nanos(deadline), Ordering::Relaxed);
    }

    /// Why the last call was cut off, if it was.
    pub fn take_cut(&self) -> Option<Cut> {
        decode(self.0.cut.swap(0, Ordering::Relaxed))
    }
}

/// Whether this thread is an async worker of a multi-threaded runtime: a statement must not
/// hold it for long.
pub fn on_async_worker() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Runs `f` with this thread's async worker role handed to another thread first, so the
/// runtime's other tasks go on while `f` blocks (only on a multi-threaded runtime's thread).
pub fn off_async_worker<T>(f: impl FnOnce() -> T) -> T {
    if on_async_worker() {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}
