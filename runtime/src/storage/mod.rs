//! Durable storage: the seam to the engine that keeps the bytes (`backend`), the engines
//! (`embedded`: redb with a write-ahead log; `postgres`: cluster mode), the write operations
//! (`ops`), group commit (`commit`), the output gate (`gate`), per-object views (`object`), each
//! object's SQL database (`sql`) and a read-only view of the stored objects for operators
//! (`inspect`).
//!
//! Storage sees `(class, object id, key bytes)` and nothing from wasmtime. It never says an output
//! may leave before the commit covering its writes is durable: that promise is [`Durable`].

pub mod backend;
pub(crate) mod commit;
pub mod embedded;
pub mod export;
mod gate;
pub mod import;
pub mod inspect;
mod object;
pub mod ops;
pub mod postgres;
pub mod schema;
pub mod sql;

use std::sync::Arc;

pub use backend::{Backend, BackendError, Reader, Sink, SinkError};
pub use commit::{CommitError, Committer, CommitterThread, Durable, WriteOp};
pub use embedded::check::{Report, check};
pub use embedded::wal::{
    Log, LogDamage, LogFile, RecoverError, Recovery, TornRecord, WAL_FILE, fuzz_log,
};
pub use embedded::{DB_FILE, Redb, backup::copy as backup, open};
pub use gate::{Committed, Gated, OutputGate};
pub use object::{EventWrites, ListOptions, ObjectStorage, StorageError};

/// The engine storage reads from, shared by everything above the seam.
pub type Store = Arc<dyn Backend>;

/// Bytes free for this process on the file system that holds `path` (`None` if it cannot be
/// told).
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs reads the NUL-terminated path and writes only the struct we pass.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}
