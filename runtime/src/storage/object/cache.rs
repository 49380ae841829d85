//! One object's read cache: the values it knows (clean, or written by an event whose commit is
//! not durable yet), known absences included, each marked with the sequence number of the write
//! set that wrote it. Only the object writes its keys (one instance per id), which is what makes
//! the cache authoritative: a key it holds need not be read from storage. It also tracks the
//! object's write sets (handed out, durable) and a `delete-all` not durable yet, until which
//! storage is stale for the object and the cache alone is the truth.

use std::collections::BTreeMap;
use std::ops::RangeBounds;

use bytes::Bytes;

/// Cached bytes above which a fully durable cache is dropped (re-read from storage on demand).
const BUDGET_BYTES: usize = 4 * 1024 * 1024;
/// Rough per-entry overhead counted against the budget.
const ENTRY_OVERHEAD: usize = 64;

struct Cached {
    value: Option<Bytes>,
    /// Sequence number of the write set that wrote this value; clean once `durable >= dirty`.
    dirty: u64,
}

/// See the module's header.
#[derive(Default)]
pub(super) struct ReadCache {
    entries: BTreeMap<Vec<u8>, Cached>,
    bytes: usize,
    /// Sequence number of a `delete-all` not durable yet.
    pending_clear: Option<u64>,
    /// Newest sequence number handed out, and newest known durable.
    submitted: u64,
    durable: u64,
}

impl ReadCache {
    /// What the cache says of `key`: `Some(value)` (`None`: absent) when it knows, `None` when
    /// storage must be read.
    pub fn lookup(&self, key: &[u8]) -> Option<Option<Bytes>> {
        match self.entries.get(key) {
            Some(cached) => Some(cached.value.clone()),
            None if self.pending_clear.is_some() => Some(None),
            None => None,
        }
    }

    /// Whether storage is stale for the object (a `delete-all` is not durable yet).
    pub fn storage_is_stale(&self) -> bool {
        self.pending_clear.is_some()
    }

    /// The known values in `range`, in key order.
    pub fn range<'a>(
        &'a self,
        range: impl RangeBounds<[u8]> + 'a,
    ) -> impl DoubleEndedIterator<Item = (&'a [u8], Option<&'a Bytes>)> + 'a {
        self.entries
            .range::<[u8], _>(range)
            .map(|(key, cached)| (key.as_slice(), cached.value.as_ref()))
    }

    /// The sequence number of a new write set.
    pub fn next_seq(&mut self) -> u64 {
        self.submitted += 1;
        self.submitted
    }

    /// Write set `seq` deletes everything the object stored.
    pub fn cleared(&mut self, seq: u64) {
        self.entries.clear();
        self.bytes = 0;
        self.pending_clear = Some(seq);
    }

    /// Remembers `value` of `key`, as written by write set `dirty` (0: read from storage).
    pub fn remember(&mut self, key: Vec<u8>, value: Option<Bytes>, dirty: u64) {
        let size = ENTRY_OVERHEAD + key.len() + value.as_ref().map_or(0, Bytes::len);
        self.bytes += size;
        if let Some(old) = self.entries.insert(key, Cached { value, dirty }) {
            let old_size = ENTRY_OVERHEAD + old.value.as_ref().map_or(0, Bytes::len);
            self.bytes = self.bytes.saturating_sub(old_size);
        }
    }

    /// Write set `seq` (and every earlier one) is durable.
    pub fn mark_durable(&mut self, seq: u64) {
        self.durable = self.durable.max(seq);
        if self.pending_clear.is_some_and(|s| s <= self.durable) {
            self.pending_clear = None;
        }
        self.trim();
    }

    /// Whether some write set handed out is not durable yet.
    pub fn has_pending_writes(&self) -> bool {
        self.submitted > self.durable
    }

    /// Drops the whole cache when it is over budget and nothing in it awaits durability.
    pub fn trim(&mut self) {
        if self.bytes > BUDGET_BYTES && !self.has_pending_writes() {
            debug_assert!(self.entries.values().all(|c| c.dirty <= self.durable));
            self.entries.clear();
            self.bytes = 0;
        }
    }
}
