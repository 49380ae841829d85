//! `list` (and the key-value bytes `databaseSize` counts): one object's entries in a key range,
//! merged from the event's write set, the cache and redb, read lazily so that a limit or the byte
//! cap stops the scan.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::{DiskEntries, KeyRange, ObjectStorage, StorageError, internal};
use crate::storage::schema::{self, Table};

/// The options of `list`, in domain terms.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub prefix: Option<String>,
    pub start: Option<String>,
    pub start_after: Option<String>,
    pub end: Option<String>,
    pub reverse: bool,
    pub limit: Option<u32>,
}

impl ObjectStorage {
    pub fn list(&mut self, options: &ListOptions) -> Result<Vec<(String, Bytes)>, StorageError> {
        if options.start.is_some() && options.start_after.is_some() {
            return Err(StorageError::InvalidArgument(
                "give at most one of `start` and `start-after`".into(),
            ));
        }
        let Some((low, high)) = key_range(options) else {
            return Ok(Vec::new());
        };
        let limit = options.limit.map_or(usize::MAX, |l| l as usize);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let max = self.max_list_bytes;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        self.scan(&low, &high, options.reverse, |key, value| {
            bytes += key.len() + value.len();
            if bytes > max {
                return Err(StorageError::ResultTooLarge {
                    limit: max as u64,
                    actual: bytes as u64,
                });
            }
            let key = String::from_utf8(key)
                .map_err(|_| StorageError::Internal("a stored key is not UTF-8".into()))?;
            out.push((key, value));
            Ok(out.len() < limit)
        })?;
        self.read_bytes += bytes as u64;
        Ok(out)
    }

    /// Bytes of the object's key-value entries (keys and values) as this event sees them: what
    /// `databaseSize` adds to the SQL pages. Reads every entry.
    pub fn kv_bytes(&mut self) -> Result<u64, StorageError> {
        let high = Bound::Excluded(vec![crate::storage::sql::pages::INTERNAL]);
        let mut total = 0u64;
        self.scan(&Bound::Unbounded, &high, false, |key, value| {
            total += (key.len() + value.len()) as u64;
            Ok(true)
        })?;
        Ok(total)
    }

    /// Visits the entries in `low..high` in key order (or reversed): the event's layers over the
    /// cache over redb, deletions hidden, until `visit` answers `false`.
    fn scan(
        &mut self,
        low: &Bound<Vec<u8>>,
        high: &Bound<Vec<u8>>,
        reverse: bool,
        mut visit: impl FnMut(Vec<u8>, Bytes) -> Result<bool, StorageError>,
    ) -> Result<(), StorageError> {
        let range = (bound_ref(low), bound_ref(high));

        // What overrides redb: the cache (unless this event cleared), then the event's layers.
        let layers = self.writes.layers();
        let newest_clear = layers.iter().rposition(|l| l.cleared);
        let mut overlay: BTreeMap<&[u8], Option<&Bytes>> = BTreeMap::new();
        if newest_clear.is_none() {
            overlay.extend(self.cache.range(range));
        }
        for layer in &layers[newest_clear.unwrap_or(0)..] {
            for (key, value) in layer.writes.range::<[u8], _>(range) {
                overlay.insert(key, value.as_ref());
            }
        }
        let read_disk = newest_clear.is_none() && !self.cache.storage_is_stale();
        // Read lazily: the merge below stops when `visit` does, and so does the scan.
        let disk: DiskEntries = if read_disk {
            self.disk_range(low, high, reverse)?
        } else {
            Box::new(std::iter::empty())
        };

        let mut overlay: Box<dyn Iterator<Item = (&[u8], Option<&Bytes>)>> = if reverse {
            Box::new(overlay.into_iter().rev())
        } else {
            Box::new(overlay.into_iter())
        };
        let mut overlay = overlay.by_ref().peekable();
        let mut disk = disk.peekable();
        loop {
            if let Some(Err(_)) = disk.peek() {
                return Err(disk.next().expect("peeked").expect_err("an error"));
            }
            let take_overlay = match (overlay.peek(), disk.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (_, Some(Err(_))) => unreachable!("errors are returned above"),
                (Some((ok, _)), Some(Ok((dk, _)))) => {
                    let overlay_first = if reverse {
                        *ok >= dk.as_slice()
                    } else {
                        *ok <= dk.as_slice()
                    };
                    if *ok == dk.as_slice() {
                        disk.next();
                    }
                    overlay_first
                }
            };
            let (key, value) = if take_overlay {
                let (key, value) = overlay.next().expect("peeked");
                match value {
                    Some(v) => (key.to_vec(), v.clone()),
                    None => continue,
                }
            } else {
                disk.next().expect("peeked")?
            };
            if !visit(key, value)? {
                break;
            }
        }
        Ok(())
    }

    /// The redb entries of this object within the user-key range, in the requested order, read
    /// as they are consumed.
    fn disk_range(
        &self,
        low: &Bound<Vec<u8>>,
        high: &Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<DiskEntries, StorageError> {
        let full = |b: &Bound<Vec<u8>>, unbounded_as: Option<Vec<u8>>, inclusive_default| match b {
            Bound::Included(k) => Bound::Included(self.full_key(k)),
            Bound::Excluded(k) => Bound::Excluded(self.full_key(k)),
            Bound::Unbounded => match unbounded_as {
                Some(k) if inclusive_default => Bound::Included(k),
                Some(k) => Bound::Excluded(k),
                None => Bound::Unbounded,
            },
        };
        let low = full(low, Some(self.prefix.clone()), true);
        let high = full(high, schema::prefix_end(&self.prefix), false);
        let reader = self.store.reader().map_err(internal)?;
        let range = reader
            .range(Table::Data, (low, high), reverse)
            .map_err(internal)?;
        let prefix_len = self.prefix.len();
        // The bounds keep the scan inside this object (`prefix_end` of a 40-byte object prefix
        // is only `None` for an all-0xFF prefix, whose range then ends with the table).
        Ok(Box::new(range.map(move |entry| {
            entry.map_err(internal).map(|(mut key, value)| {
                key.drain(..prefix_len);
                (key, value)
            })
        })))
    }
}

fn bound_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The user-key range `list` covers, or `None` when it is empty.
fn key_range(options: &ListOptions) -> Option<KeyRange> {
    let mut low: Bound<Vec<u8>> = Bound::Unbounded;
    let mut raise = |candidate: Bound<Vec<u8>>| {
        let replace = match (&low, &candidate) {
            (_, Bound::Unbounded) => false,
            (Bound::Unbounded, _) => true,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b)) => b > a,
            (Bound::Included(a), Bound::Excluded(b)) => b >= a,
            (Bound::Excluded(a), Bound::Excluded(b)) => b > a,
        };
        if replace {
            low = candidate;
        }
    };
    if let Some(p) = &options.prefix {
        raise(Bound::Included(p.as_bytes().to_vec()));
    }
    if let Some(s) = &options.start {
        raise(Bound::Included(s.as_bytes().to_vec()));
    }
    if let Some(s) = &options.start_after {
        raise(Bound::Excluded(s.as_bytes().to_vec()));
    }
    let mut high: Bound<Vec<u8>> = Bound::Unbounded;
    let mut lower = |candidate: Vec<u8>| {
        if match &high {
            Bound::Excluded(h) => candidate < *h,
            _ => true,
        } {
            high = Bound::Excluded(candidate);
        }
    };
    if let Some(e) = &options.end {
        lower(e.as_bytes().to_vec());
    }
    if let Some(end) = options
        .prefix
        .as_ref()
        .and_then(|p| schema::prefix_end(p.as_bytes()))
    {
        lower(end);
    }
    // User keys end before the object's internal entries (the SQL pages).
    lower(vec![crate::storage::sql::pages::INTERNAL]);
    // BTreeMap::range panics on an inverted or empty-excluded range: refuse those here.
    let nonempty = match (&low, &high) {
        (Bound::Included(l), Bound::Excluded(h)) => l < h,
        (Bound::Excluded(l), Bound::Excluded(h)) => {
            let mut next = l.clone();
            next.push(0);
            next < *h
        }
        _ => true,
    };
    nonempty.then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ListOptions {
        ListOptions::default()
    }

    #[test]
    fn key_range_takes_the_tightest_bounds() {
        let o = ListOptions {
            prefix: Some("b".into()),
            start: Some("a".into()),
            end: Some("bz".into()),
            ..opts()
        };
        assert_eq!(
            key_range(&o),
            Some((
                Bound::Included(b"b".to_vec()),
                Bound::Excluded(b"bz".to_vec())
            ))
        );
        let o = ListOptions {
            prefix: Some("b".into()),
            end: Some("z".into()),
            ..opts()
        };
        assert_eq!(key_range(&o).unwrap().1, Bound::Excluded(b"c".to_vec()));
    }

    #[test]
    fn empty_ranges_are_recognised() {
        let inverted = ListOptions {
            start: Some("b".into()),
            end: Some("a".into()),
            ..opts()
        };
        assert_eq!(key_range(&inverted), None);
        let touching = ListOptions {
            start_after: Some("a".into()),
            end: Some("a\0".into()),
            ..opts()
        };
        assert_eq!(key_range(&touching), None);
        let equal = ListOptions {
            start: Some("a".into()),
            end: Some("a".into()),
            ..opts()
        };
        assert_eq!(key_range(&equal), None);
    }
}
