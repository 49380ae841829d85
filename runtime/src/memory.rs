//! The heap: mimalloc is the global allocator (against glibc's malloc, 8-20% less CPU per request
//! on the runtime's many small, short-lived buffers; BENCHMARKS.md "The worker hop"). mimalloc keeps freed memory in the thread that allocated it, and a thread that goes
//! idle never returns it: [`collect`] runs when a runtime thread parks (at most once a second per
//! thread) and on the reaper after evictions, so evicted objects' memory goes back to the OS.

use std::cell::Cell;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Least time between two collections on one parking thread.
const PARK_COLLECT_EVERY: Duration = Duration::from_secs(1);

/// `mi_option_arena_eager_commit` of mimalloc v3's option enum (the sys crate names v2's only).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits heap memory only as it is used (mimalloc v3 commits whole arenas up front on Linux:
/// 60 MiB more resident at start). Call first thing in `main`.
pub fn configure() {
    // SAFETY: sets a process-wide allocator option; called before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

/// Returns this thread's free heap memory to the OS.
pub fn collect() {
    // SAFETY: `mi_collect` only frees memory this thread's heap no longer uses.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// For a runtime thread that parks: collects, at most once per [`PARK_COLLECT_EVERY`].
pub fn collect_on_park() {
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    let due = LAST
        .get()
        .is_none_or(|last| now.duration_since(last) >= PARK_COLLECT_EVERY);
    if due {
        LAST.set(Some(now));
        collect();
    }
}
