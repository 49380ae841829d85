//! The SQLite VFS `duro`: an object's database file is a run of 4 KiB chunks kept as entries of
//! that object ([`super::pages`]), read and written through its storage view — so SQL writes
//! join the event's write set and commit with its key-value writes, and nothing lives in a file.
//!
//! SQLite calls the VFS from inside `sqlite3_step` and friends, with no way to pass our view
//! along; [`with_view`] lends it for the duration of one call into SQLite, through a
//! thread-local pointer. Every connection runs on the thread that owns its object's view, and
//! only inside `with_view`; a callback outside it fails with `SQLITE_IOERR`. Only the main
//! database file opens: the journal is kept in memory (`journal_mode=MEMORY`) and temporary
//! tables too (`temp_store=MEMORY`); locks are no-ops (one connection per object).

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Once;

use rusqlite::ffi;

use super::pages;
use crate::storage::{ObjectStorage, StorageError};

/// The name connections open with.
pub const NAME: &CStr = c"duro";

thread_local! {
    /// The view lent by [`with_view`], while SQLite runs.
    static VIEW: Cell<*mut ObjectStorage> = const { Cell::new(std::ptr::null_mut()) };
    /// The storage error behind the last failed callback: it replaces SQLite's generic
    /// "disk I/O error" in what the guest is told.
    static FAILURE: RefCell<Option<StorageError>> = const { RefCell::new(None) };
}

/// Runs `f` (calls into SQLite on a `duro` connection) with `view` as the object whose pages
/// the VFS reads and writes; returns what `f` returned and the storage error a callback met.
pub fn with_view<T>(view: &mut ObjectStorage, f: impl FnOnce() -> T) -> (T, Option<StorageError>) {
    register();
    struct Restore(*mut ObjectStorage);
    impl Drop for Restore {
        fn drop(&mut self) {
            VIEW.with(|v| v.set(self.0));
        }
    }
    let _restore = Restore(VIEW.with(|v| v.replace(view as *mut ObjectStorage)));
    FAILURE.with(|f| f.borrow_mut().take());
    let out = f();
    (out, FAILURE.with(|f| f.borrow_mut().take()))
}

/// Runs a callback's body on the lent view; a missing view, a storage error or a panic becomes
/// `error` (the error is kept for [`with_view`]).
fn on_view(
    error: c_int,
    body: impl FnOnce(&mut ObjectStorage) -> Result<c_int, StorageError>,
) -> c_int {
    let view = VIEW.with(Cell::get);
    if view.is_null() {
        return error;
    }
    // SAFETY: `with_view` set the pointer from a `&mut` it holds for the whole call into
    // SQLite, on this thread, and uses nothing else of the view meanwhile.
    let view = unsafe { &mut *view };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(view))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            FAILURE.with(|f| *f.borrow_mut() = Some(e));
            error
        }
        Err(_) => error,
    }
}

/// Registers the VFS once per process.
fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        super::heap::init();
        // SAFETY: a zeroed sqlite3_vfs is all null pointers and `None` callbacks; the fields
        // SQLite needs are set below, and the struct is leaked, so it outlives every connection.
        let vfs: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(unsafe { std::mem::zeroed() }));
        vfs.iVersion = 2;
        vfs.szOsFile = std::mem::size_of::<ffi::sqlite3_file>() as c_int;
        vfs.mxPathname = 256;
        vfs.zName = NAME.as_ptr();
        vfs.xOpen = Some(open);
        vfs.xDelete = Some(delete);
        vfs.xAccess = Some(access);
        vfs.xFullPathname = Some(full_pathname);
        vfs.xRandomness = Some(randomness);
        vfs.xSleep = Some(sleep);
        vfs.xCurrentTime = Some(current_time);
        vfs.xCurrentTimeInt64 = Some(current_time_int64);
        vfs.xGetLastError = Some(get_last_error);
        // SAFETY: `vfs` is a complete, 'static VFS.
        let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
        assert_eq!(rc, ffi::SQLITE_OK, "registering the duro SQLite VFS");
    });
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(lock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    _name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    if flags & ffi::SQLITE_OPEN_MAIN_DB == 0 {
        // Journals and temporary files live in memory (see the pragmas in `super::open`).
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: SQLite hands us `szOsFile` bytes for the file and, when not null, an int.
    unsafe {
        (*file).pMethods = &METHODS;
        if !out_flags.is_null() {
            *out_flags = flags;
        }
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn delete(_: *mut ffi::sqlite3_vfs, _: *const c_char, _: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn access(
    _: *mut ffi::sqlite3_vfs,
    _: *const c_char,
    _: c_int,
    out: *mut c_int,
) -> c_int {
    // Asked for journals and WAL files: there are none.
    // SAFETY: SQLite passes a valid out pointer.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn full_pathname(
    _: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: `name` is a NUL-terminated string and `out` holds `n_out` bytes.
    unsafe {
        let name = CStr::from_ptr(name).to_bytes_with_nul();
        if name.len() > n_out as usize {
            return ffi::SQLITE_CANTOPEN;
        }
        std::ptr::copy_nonoverlapping(name.as_ptr().cast(), out, name.len());
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn randomness(_: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    // SAFETY: `out` holds `n` bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(out.cast::<u8>(), n.max(0) as usize) };
    match getrandom::fill(out) {
        Ok(()) => n,
        Err(_) => 0,
    }
}

unsafe extern "C" fn sleep(_: *mut ffi::sqlite3_vfs, _micros: c_int) -> c_int {
    // Nothing waits on a lock here: never sleep on an object's thread.
    0
}

unsafe extern "C" fn current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    let mut ms = 0i64;
    // SAFETY: forwarding the pointers SQLite gave.
    unsafe {
        current_time_int64(vfs, &mut ms);
        *out = ms as f64 / 86_400_000.0;
    }
    ffi::SQLITE_OK
}

/// Milliseconds since the Julian epoch, as SQLite counts.
unsafe extern "C" fn current_time_int64(
    _: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    const UNIX_EPOCH_JULIAN_MS: i64 = 24_405_875 * 8_640_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // SAFETY: SQLite passes a valid out pointer.
    unsafe { *out = UNIX_EPOCH_JULIAN_MS + now };
    ffi::SQLITE_OK
}

unsafe extern "C" fn get_last_error(_: *mut ffi::sqlite3_vfs, _: c_int, _: *mut c_char) -> c_int {
    0
}

unsafe extern "C" fn close(_: *mut ffi::sqlite3_file) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn read(
    _: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: `buf` holds `amount` bytes.
    let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), amount.max(0) as usize) };
    on_view(ffi::SQLITE_IOERR_READ, |view| {
        let complete = pages::read(view, buf, offset as u64)?;
        Ok(if complete {
            ffi::SQLITE_OK
        } else {
            ffi::SQLITE_IOERR_SHORT_READ
        })
    })
}

unsafe extern "C" fn write(
    _: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: `buf` holds `amount` bytes.
    let buf = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), amount.max(0) as usize) };
    on_view(ffi::SQLITE_FULL, |view| {
        pages::write(view, buf, offset as u64)?;
        Ok(ffi::SQLITE_OK)
    })
}

unsafe extern "C" fn truncate(_: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    on_view(ffi::SQLITE_IOERR_TRUNCATE, |view| {
        pages::truncate(view, size as u64)?;
        Ok(ffi::SQLITE_OK)
    })
}

unsafe extern "C" fn sync(_: *mut ffi::sqlite3_file, _: c_int) -> c_int {
    // Durability is the event's commit, not the file's.
    ffi::SQLITE_OK
}

unsafe extern "C" fn file_size(_: *mut ffi::sqlite3_file, out: *mut ffi::sqlite3_int64) -> c_int {
    on_view(ffi::SQLITE_IOERR_FSTAT, |view| {
        let size = pages::size(view)?;
        // SAFETY: SQLite passes a valid out pointer.
        unsafe { *out = size as ffi::sqlite3_int64 };
        Ok(ffi::SQLITE_OK)
    })
}

unsafe extern "C" fn lock(_: *mut ffi::sqlite3_file, _: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn check_reserved_lock(_: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: SQLite passes a valid out pointer.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn file_control(_: *mut ffi::sqlite3_file, _: c_int, _: *mut c_void) -> c_int {
    ffi::SQLITE_NOTFOUND
}

unsafe extern "C" fn sector_size(_: *mut ffi::sqlite3_file) -> c_int {
    pages::CHUNK as c_int
}

unsafe extern "C" fn device_characteristics(_: *mut ffi::sqlite3_file) -> c_int {
    ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE
}
