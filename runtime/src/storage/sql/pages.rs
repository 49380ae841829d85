//! An object's SQLite database file as entries of that object: 4 KiB chunks (SQLite's page
//! size, so a page is one entry) under keys no user key can take — user keys are UTF-8, which
//! never holds the byte 0xFF — and the file's size beside them:
//!
//! - `[0xFF]['p'][chunk index u32 BE]` → the chunk's bytes (absent: zeros);
//! - `[0xFF]['s']` → the file size, u64 LE (absent: 0, no database yet).
//!
//! They sort after every user key of the object, inside its range: `deleteAll`, backups,
//! the write set's limit and the group commit treat them like any other entry.

use bytes::Bytes;

use crate::storage::{ObjectStorage, StorageError};

/// Bytes per chunk: SQLite's default page size, so a page is one entry (a database given
/// another page size before its first table still works: its pages share or span chunks).
pub const CHUNK: usize = 4096;
/// The first byte of every internal key of an object.
pub const INTERNAL: u8 = crate::storage::schema::INTERNAL;
/// The key of the file's size.
pub const SIZE_KEY: [u8; 2] = [INTERNAL, b's'];
/// Where the chunks' keys start.
pub const CHUNKS: [u8; 2] = [INTERNAL, b'p'];

/// The chunk index of a chunk's key (`None` for any other key).
pub fn chunk_index(key: &[u8]) -> Option<u64> {
    let index: [u8; 4] = key.strip_prefix(&CHUNKS)?.try_into().ok()?;
    Some(u32::from_be_bytes(index).into())
}

/// The file size a size entry holds.
pub fn decode_size(value: &[u8]) -> u64 {
    value.try_into().map_or(0, u64::from_le_bytes)
}

fn chunk_key(index: u64) -> Result<[u8; 6], StorageError> {
    let index = u32::try_from(index)
        .map_err(|_| StorageError::InvalidArgument("the SQL database is too large".into()))?;
    let mut key = [INTERNAL, b'p', 0, 0, 0, 0];
    key[2..].copy_from_slice(&index.to_be_bytes());
    Ok(key)
}

/// The file's size.
pub fn size(view: &mut ObjectStorage) -> Result<u64, StorageError> {
    Ok(view
        .read_internal(&SIZE_KEY)?
        .map_or(0, |v| decode_size(&v)))
}

fn set_size(view: &mut ObjectStorage, size: u64) -> Result<(), StorageError> {
    view.write_internal(&SIZE_KEY, Some(Bytes::copy_from_slice(&size.to_le_bytes())))
}

/// The part of one chunk a byte range covers.
struct Span {
    /// The chunk.
    index: u64,
    /// Where the part starts in the chunk.
    within: usize,
    /// Its length.
    n: usize,
    /// Where it starts in the range.
    done: usize,
}

/// The chunks `len` bytes from `offset` cover, in order.
fn spans(offset: u64, len: usize) -> impl Iterator<Item = Span> {
    let mut done = 0;
    std::iter::from_fn(move || {
        (done < len).then(|| {
            let at = offset + done as u64;
            let within = (at % CHUNK as u64) as usize;
            let span = Span {
                index: at / CHUNK as u64,
                within,
                n: (CHUNK - within).min(len - done),
                done,
            };
            done += span.n;
            span
        })
    })
}

/// Fills `buf` from `offset`; `false` if the file ends first (the rest is zeros, as SQLite
/// requires of a short read).
pub fn read(view: &mut ObjectStorage, buf: &mut [u8], offset: u64) -> Result<bool, StorageError> {
    let size = size(view)?;
    let len = buf.len();
    for Span {
        index,
        within,
        n,
        done,
    } in spans(offset, len)
    {
        let out = &mut buf[done..done + n];
        match view.read_internal(&chunk_key(index)?)? {
            Some(chunk) if chunk.len() >= within + n => {
                out.copy_from_slice(&chunk[within..within + n])
            }
            _ => out.fill(0),
        }
    }
    Ok(offset + len as u64 <= size)
}

/// Writes `data` at `offset`, growing the file if it ends before.
pub fn write(view: &mut ObjectStorage, data: &[u8], offset: u64) -> Result<(), StorageError> {
    for Span {
        index,
        within,
        n,
        done,
    } in spans(offset, data.len())
    {
        let key = chunk_key(index)?;
        let chunk = if n == CHUNK {
            Bytes::copy_from_slice(&data[done..done + n])
        } else {
            // A partial chunk (the header SQLite writes alone, in some versions): merge.
            let mut chunk = view
                .read_internal(&key)?
                .map_or_else(|| vec![0; CHUNK], |c| c.to_vec());
            chunk.resize(CHUNK, 0);
            chunk[within..within + n].copy_from_slice(&data[done..done + n]);
            Bytes::from(chunk)
        };
        view.write_internal(&key, Some(chunk))?;
    }
    let end = offset + data.len() as u64;
    if end > size(view)? {
        set_size(view, end)?;
    }
    Ok(())
}

/// Cuts the file to `new_size`, deleting the chunks past it.
pub fn truncate(view: &mut ObjectStorage, new_size: u64) -> Result<(), StorageError> {
    let old = size(view)?;
    if new_size >= old {
        return Ok(());
    }
    let keep = new_size.div_ceil(CHUNK as u64);
    for index in keep..old.div_ceil(CHUNK as u64) {
        view.write_internal(&chunk_key(index)?, None)?;
    }
    set_size(view, new_size)
}
