//! SQLite's heap, counted per object. SQLite allocates through one process-wide allocator
//! (`SQLITE_CONFIG_MALLOC`), installed by [`init`] before SQLite first starts: every block it
//! hands out while SQLite runs for an object's connection ([`Heap::charging`]) is charged to that
//! connection's [`Heap`]. A heap refuses to grow past its cap — the object's memory limit — and
//! holds what it uses in the runtime's memory budget, a step at a time; a refused allocation
//! makes SQLite fail the statement with `SQLITE_NOMEM`, which the caller reports as the limit
//! it ran into. So a statement's temporary b-trees, sorter, journal and page cache are all
//! bounded, per object and in sum.
//!
//! Each block carries a header: its size and the heap that paid for it (a counted reference),
//! so a block freed later — in another call, or after its connection closed — goes back to the
//! right heap, and a heap lives until its last block is freed. Blocks allocated outside an
//! object's call (snapshots, `duro check`, SQLite's own start) are charged to no heap.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use rusqlite::ffi;

use super::MemoryAccount;

/// What a heap reserves in the memory budget at a time.
const STEP: usize = 1024 * 1024;
/// The header before each block: its size, then its heap (or null).
const HEADER: usize = 16;
/// Blocks are aligned as SQLite needs (8) and as the header keeps them (16).
const ALIGN: usize = 16;

/// Why a heap refused an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The object's own cap.
    Cap(usize),
    /// The runtime's memory budget, shared by all objects.
    Budget,
}

/// One connection's share of SQLite's heap: what it holds, its cap, and its reservation in the
/// runtime's memory budget.
pub struct Heap {
    used: AtomicUsize,
    cap: usize,
    /// Bytes held in the budget (a multiple of [`STEP`]).
    reserved: AtomicUsize,
    account: Option<Arc<dyn MemoryAccount>>,
    /// The last refusal not yet taken: 0 none, 1 cap, 2 budget.
    refused: AtomicU8,
}

impl Heap {
    /// A heap of at most `cap` bytes, reserving what it uses in `account` (if any).
    pub fn new(cap: usize, account: Option<Arc<dyn MemoryAccount>>) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            cap,
            reserved: AtomicUsize::new(0),
            account,
            refused: AtomicU8::new(0),
        })
    }

    /// Bytes SQLite holds for this heap's connection now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves room for the first step in the budget (at open: a connection that could not
    /// hold its page cache is refused before it starts).
    pub fn reserve_first(&self) -> bool {
        self.grow(STEP)
    }

    /// Runs `f` with every SQLite allocation on this thread charged to this heap.
    pub fn charging<T>(self: &Arc<Self>, f: impl FnOnce() -> T) -> T {
        init();
        struct Restore(*const Heap);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(Arc::as_ptr(self))));
        f()
    }

    /// Takes the reason of the last refused allocation, if any.
    pub fn take_refusal(&self) -> Option<Refusal> {
        match self.refused.swap(0, Ordering::Relaxed) {
            1 => Some(Refusal::Cap(self.cap)),
            2 => Some(Refusal::Budget),
            _ => None,
        }
    }

    /// Charges `bytes` more; `false` (and the reason kept) if they do not fit.
    fn charge(&self, bytes: usize) -> bool {
        let used = self.used.load(Ordering::Relaxed);
        let after = used.saturating_add(bytes);
        if after > self.cap {
            self.refused.store(1, Ordering::Relaxed);
            return false;
        }
        if !self.grow(after) {
            self.refused.store(2, Ordering::Relaxed);
            return false;
        }
        self.used.store(after, Ordering::Relaxed);
        true
    }

    /// Reserves in the budget what `after` bytes need beyond the reservation.
    fn grow(&self, after: usize) -> bool {
        let Some(account) = &self.account else {
            return true;
        };
        let reserved = self.reserved.load(Ordering::Relaxed);
        if after <= reserved {
            return true;
        }
        let more = (after - reserved).div_ceil(STEP) * STEP;
        if !account.try_reserve(more) {
            return false;
        }
        self.reserved.store(reserved + more, Ordering::Relaxed);
        true
    }

    /// Gives `bytes` back; the reservation shrinks once two steps are unused.
    fn discharge(&self, bytes: usize) {
        let used = self.used.load(Ordering::Relaxed).saturating_sub(bytes);
        self.used.store(used, Ordering::Relaxed);
        let Some(account) = &self.account else {
            return;
        };
        let reserved = self.reserved.load(Ordering::Relaxed);
        let keep = used.div_ceil(STEP).max(1) * STEP;
        if reserved >= keep + 2 * STEP {
            self.reserved.store(keep, Ordering::Relaxed);
            account.release(reserved - keep);
        }
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        if let Some(account) = &self.account {
            account.release(*self.reserved.get_mut());
        }
    }
}

thread_local! {
    /// The heap SQLite's allocations on this thread are charged to, while one is charging.
    static CURRENT: Cell<*const Heap> = const { Cell::new(std::ptr::null()) };
}

/// Installs the counting allocator; SQLite starts after it. Idempotent; every use of SQLite in
/// the process comes after it (the VFS registration and snapshots call it).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(malloc),
            xFree: Some(free),
            xRealloc: Some(realloc),
            xSize: Some(size),
            xRoundup: Some(roundup),
            xInit: Some(noop_init),
            xShutdown: Some(noop_shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: SQLite has not started yet (this runs before any other use of it in the
        // process); it copies the methods. Memory statistics off: they take a global mutex on
        // every allocation, and the heaps count what duro needs.
        unsafe {
            let rc = ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods);
            assert_eq!(rc, ffi::SQLITE_OK, "installing SQLite's allocator");
            let rc = ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int);
            assert_eq!(rc, ffi::SQLITE_OK, "turning SQLite's memory statistics off");
        }
    });
}

fn layout(size: usize) -> Option<std::alloc::Layout> {
    std::alloc::Layout::from_size_align(size.checked_add(HEADER)?, ALIGN).ok()
}

/// Writes the header of a block of `size` bytes charged to `heap` and returns the user pointer.
///
/// SAFETY: `base` points to at least `HEADER + size` bytes aligned to `ALIGN`.
unsafe fn finish(base: *mut u8, size: usize, heap: *const Heap) -> *mut c_void {
    unsafe {
        base.cast::<usize>().write(size);
        base.add(8).cast::<*const Heap>().write(heap);
        base.add(HEADER).cast()
    }
}

/// The header of a user pointer: (base, size, heap).
///
/// SAFETY: `p` came from [`malloc`] or [`realloc`] and is live.
unsafe fn header(p: *mut c_void) -> (*mut u8, usize, *const Heap) {
    unsafe {
        let base = p.cast::<u8>().sub(HEADER);
        let size = base.cast::<usize>().read();
        let heap = base.add(8).cast::<*const Heap>().read();
        (base, size, heap)
    }
}

unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
    let size = n.max(0) as usize;
    let Some(layout) = layout(size) else {
        return std::ptr::null_mut();
    };
    let heap = CURRENT.with(Cell::get);
    if !heap.is_null() {
        // SAFETY: a charging heap is alive for the whole call that set it.
        let charged = unsafe { &*heap }.charge(size);
        if !charged {
            return std::ptr::null_mut();
        }
        // SAFETY: the block keeps its heap alive: one count per block.
        unsafe { Arc::increment_strong_count(heap) };
    }
    // SAFETY: the layout has a non-zero size.
    let base = unsafe { std::alloc::alloc(layout) };
    if base.is_null() {
        if !heap.is_null() {
            // SAFETY: undoing the charge and the count taken above.
            unsafe {
                (*heap).discharge(size);
                Arc::decrement_strong_count(heap);
            }
        }
        return std::ptr::null_mut();
    }
    // SAFETY: `base` holds the header and `size` bytes.
    unsafe { finish(base, size, heap) }
}

unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: SQLite frees only blocks this allocator gave it.
    unsafe {
        let (base, size, heap) = header(p);
        std::alloc::dealloc(base, layout(size).expect("a block's layout"));
        if !heap.is_null() {
            (*heap).discharge(size);
            Arc::decrement_strong_count(heap);
        }
    }
}

unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    if p.is_null() {
        // SAFETY: forwarding.
        return unsafe { malloc(n) };
    }
    let new_size = n.max(0) as usize;
    // SAFETY: SQLite reallocates only live blocks this allocator gave it.
    let (base, old_size, heap) = unsafe { header(p) };
    let Some(new_layout) = layout(new_size) else {
        return std::ptr::null_mut();
    };
    // The block stays charged to the heap that paid for it.
    if !heap.is_null() && new_size > old_size {
        // SAFETY: the block holds a count of its heap.
        if !unsafe { &*heap }.charge(new_size - old_size) {
            return std::ptr::null_mut();
        }
    }
    let old_layout = layout(old_size).expect("a block's layout");
    // SAFETY: `base` was allocated with `old_layout`; the new size is non-zero.
    let moved = unsafe { std::alloc::realloc(base, old_layout, new_layout.size()) };
    if moved.is_null() {
        if !heap.is_null() && new_size > old_size {
            // SAFETY: undoing the charge above.
            unsafe { &*heap }.discharge(new_size - old_size);
        }
        return std::ptr::null_mut();
    }
    if !heap.is_null() && new_size < old_size {
        // SAFETY: as above.
        unsafe { &*heap }.discharge(old_size - new_size);
    }
    // SAFETY: `moved` holds the header and `new_size` bytes.
    unsafe { finish(moved, new_size, heap) }
}

unsafe extern "C" fn size(p: *mut c_void) -> c_int {
    if p.is_null() {
        return 0;
    }
    // SAFETY: SQLite asks only about live blocks this allocator gave it.
    let (_, size, _) = unsafe { header(p) };
    size as c_int
}

unsafe extern "C" fn roundup(n: c_int) -> c_int {
    (n.max(0) + 7) & !7
}

unsafe extern "C" fn noop_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn noop_shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heap_counts_what_sqlite_holds_for_it_and_gives_it_back_when_the_connection_closes() {
        let heap = Heap::new(64 * 1024 * 1024, None);
        let conn = heap.charging(|| rusqlite::Connection::open_in_memory().unwrap());
        heap.charging(|| {
            conn.execute_batch(
                "CREATE TABLE t (x); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 \
                 FROM c LIMIT 10000) INSERT INTO t SELECT x FROM c;",
            )
            .unwrap()
        });
        assert!(heap.used() > 100_000, "{} bytes", heap.used());
        drop(conn);
        assert_eq!(heap.used(), 0);
        assert_eq!(Arc::strong_count(&heap), 1);
    }

    #[test]
    fn a_heap_refuses_to_grow_past_its_cap_and_sqlite_fails_the_statement() {
        let heap = Heap::new(4 * 1024 * 1024, None);
        let conn = heap.charging(|| rusqlite::Connection::open_in_memory().unwrap());
        // As objects' connections keep them: temporary b-trees in memory, never in a file.
        heap.charging(|| conn.execute_batch("PRAGMA temp_store = MEMORY").unwrap());
        let error = heap
            .charging(|| {
                conn.query_row(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION SELECT x + 1 FROM c) \
                     SELECT count(*) FROM c",
                    [],
                    |row| row.get::<_, i64>(0),
                )
            })
            .unwrap_err();
        assert!(error.to_string().contains("out of memory"), "{error}");
        assert_eq!(heap.take_refusal(), Some(Refusal::Cap(4 * 1024 * 1024)));
        // The connection still works once the statement's memory is back.
        let one: i64 = heap
            .charging(|| conn.query_row("SELECT 1", [], |row| row.get(0)))
            .unwrap();
        assert_eq!(one, 1);
        assert!(heap.used() < 1024 * 1024);
    }
}
