//! The write-ahead log: where a group commit becomes durable.
//!
//! The writer thread appends each group's write ops to `duro.wal` as one record and syncs it
//! (`fdatasync` of one or two pages of a preallocated file, ~0.2 ms here), then applies the group
//! to redb *without* fsync. Every `checkpoint_interval` (or when a record does not fit) a group
//! is committed to redb durably instead, with the sequence number of the last group it covers in
//! META; the log then starts over at offset 0. A redb commit without durability is lost on a
//! crash but leaves the file at its last durable commit (redb keeps that commit's pages until the
//! next durable one), so after a crash [`Log::open`] replays the records that follow the
//! checkpoint, in order, in one durable transaction, before anything reads the database.
//!
//! Record: `[payload len: u32 LE][crc32 of seq + payload: u32 LE][seq: u64 LE][payload]`, the
//! payload being the group's ops (see [`encode_op`]). Replay starts at offset 0 and takes records
//! while the checksum holds and the sequence numbers run on from the checkpoint's: a torn last
//! record, the zeros of a fresh file and the stale records of an earlier round all stop it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use redb::{Database, Durability};

use super::commit::{WriteOp, apply_ops};
use super::schema::{self, Table};

/// File name of the log inside the data dir.
pub const WAL_FILE: &str = "duro.wal";
/// Size of the preallocated log. Records that would not fit force a checkpoint instead.
pub const WAL_CAPACITY: u64 = 8 * 1024 * 1024;
/// META key holding the sequence number of the last group the durable redb state includes.
const CHECKPOINT_KEY: &str = "wal_checkpoint_seq";
const HEADER_LEN: usize = 16;
/// Largest encoding buffer kept between groups; a bigger one (a large upload) is freed.
const MAX_KEPT_BUFFER: usize = 1024 * 1024;

/// The open log, owned by the writer thread.
pub struct Log {
    file: File,
    /// Where the next record goes.
    offset: u64,
    /// The sequence number of the next group.
    next_seq: u64,
    /// `false` only with `--unsafe-no-fsync`: records reach the page cache, not the disk.
    sync: bool,
    /// Reused encoding buffer.
    buf: Vec<u8>,
}

/// What [`Log::open`] found.
pub struct Recovery {
    pub log: Log,
    /// Groups replayed into redb from the log (0 after a clean shutdown).
    pub replayed_groups: u64,
}

impl Log {
    /// Opens (creating and preallocating if needed) the log beside `db`, replays the groups that
    /// follow redb's last checkpoint and checkpoints them, so the log is empty on return.
    pub fn open(data_dir: &Path, db: &Database, sync: bool) -> Result<Recovery, RecoverError> {
        let path = data_dir.join(WAL_FILE);
        let io = |source| RecoverError::Io {
            path: path.clone(),
            source,
        };
        let checkpoint = read_checkpoint(db)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut last = checkpoint.unwrap_or(0);
        let mut replayed_groups = 0;
        if let Some(checkpoint) = checkpoint {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io)?;
            let groups = scan(&bytes, checkpoint + 1);
            let mut ops = Vec::new();
            for (seq, payload) in &groups {
                decode_ops(payload, &mut ops)
                    .map_err(|what| RecoverError::Corrupt { seq: *seq, what })?;
            }
            if let Some(&(seq, _)) = groups.last() {
                last = seq;
                replayed_groups = groups.len() as u64;
                checkpoint_durably(db, &ops, last)?;
            }
        }
        // A database never checkpointed (fresh, or written by a duro without a log) takes no
        // record from a file found beside it: zero the file first, then record checkpoint 0.
        if checkpoint.is_none() || file.metadata().map_err(io)?.len() < WAL_CAPACITY {
            preallocate(&mut file, data_dir).map_err(io)?;
        }
        if checkpoint.is_none() {
            checkpoint_durably(db, &[], 0)?;
        }
        Ok(Recovery {
            log: Log {
                file,
                offset: 0,
                next_seq: last + 1,
                sync,
                buf: Vec::new(),
            },
            replayed_groups,
        })
    }

    /// Appends the group made of `ops` and makes it durable. `Ok(None)` when it does not fit in
    /// what is left of the log: the caller must checkpoint it instead (see [`Log::stamp_checkpoint`]).
    pub fn append<'a>(
        &mut self,
        ops: impl Iterator<Item = &'a WriteOp>,
    ) -> io::Result<Option<u64>> {
        let seq = self.next_seq;
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER_LEN]);
        for op in ops {
            encode_op(op, &mut self.buf);
        }
        let payload_len = self.buf.len() - HEADER_LEN;
        if self.offset + self.buf.len() as u64 > WAL_CAPACITY || payload_len > u32::MAX as usize {
            self.buf = Vec::new(); // a component upload's bytes: do not keep them around
            return Ok(None);
        }
        self.buf[8..16].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&self.buf, self.offset)?;
        if self.sync {
            self.file.sync_data()?;
        }
        self.offset += self.buf.len() as u64;
        self.next_seq += 1;
        if self.buf.capacity() > MAX_KEPT_BUFFER {
            self.buf = Vec::new();
        }
        Ok(Some(seq))
    }

    /// For a group committed to redb durably instead of logged: takes its sequence number and
    /// stores it in `txn` as the checkpoint. Once `txn` is durable, call [`Log::checkpointed`].
    pub fn stamp_checkpoint(&mut self, txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        let seq = self.next_seq;
        self.next_seq += 1;
        write_checkpoint(txn, seq)
    }

    /// Whether records were appended since the last checkpoint.
    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    /// After a durable redb commit stamped by [`Log::stamp_checkpoint`]: every record is
    /// covered, the log starts over.
    pub fn checkpointed(&mut self) {
        self.offset = 0;
    }
}

/// Why the log could not be opened or replayed. The runtime refuses to start: serving without
/// the replayed writes would lose acknowledged data.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("cannot use the write-ahead log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("write-ahead log record {seq} has a valid checksum but cannot be decoded: {what}")]
    Corrupt { seq: u64, what: &'static str },
    #[error("cannot replay the write-ahead log into the database: {0}")]
    Database(#[from] redb::Error),
}

/// Applies `ops` and stores `seq` as the checkpoint, in one durable transaction.
fn checkpoint_durably(db: &Database, ops: &[WriteOp], seq: u64) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    apply_ops(&txn, ops.iter())?;
    write_checkpoint(&txn, seq)?;
    txn.commit()?;
    Ok(())
}

/// Stores `seq` as the last group the durable state includes; part of a checkpoint commit.
fn write_checkpoint(txn: &redb::WriteTransaction, seq: u64) -> Result<(), redb::Error> {
    txn.open_table(schema::META)?
        .insert(CHECKPOINT_KEY, seq.to_le_bytes().as_slice())?;
    Ok(())
}

fn read_checkpoint(db: &Database) -> Result<Option<u64>, redb::Error> {
    let value = super::read_str_table(db, schema::META, CHECKPOINT_KEY)?;
    Ok(value
        .and_then(|v| v.try_into().ok())
        .map(u64::from_le_bytes))
}

/// Fills the file with zeros up to the capacity and syncs it and its directory, so that appends
/// overwrite allocated blocks and `fdatasync` has no size or extent change to write.
fn preallocate(file: &mut File, data_dir: &Path) -> io::Result<()> {
    let zeros = vec![0u8; 1024 * 1024];
    file.seek(SeekFrom::Start(0))?;
    let mut written = 0;
    while written < WAL_CAPACITY {
        let n = zeros.len().min((WAL_CAPACITY - written) as usize);
        file.write_all(&zeros[..n])?;
        written += n as u64;
    }
    file.sync_all()?;
    File::open(data_dir)?.sync_all()
}

/// The records of `bytes` from offset 0 whose sequence numbers run on from `first_seq`.
fn scan(bytes: &[u8], first_seq: u64) -> Vec<(u64, &[u8])> {
    let mut records = Vec::new();
    let mut offset = 0;
    let mut expected = first_seq;
    while let Some(header) = bytes.get(offset..offset + HEADER_LEN) {
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let Some(payload) = bytes.get(offset + HEADER_LEN..offset + HEADER_LEN + len) else {
            break;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[8..16]);
        hasher.update(payload);
        if seq != expected || hasher.finalize() != crc {
            break;
        }
        records.push((seq, payload));
        expected += 1;
        offset += HEADER_LEN + len;
    }
    records
}

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_DATA_PREFIX: u8 = 3;
const OP_SET_ALARM: u8 = 4;
const OP_DELETE_ALARM: u8 = 5;
const OP_CLEAR_ALARM_IF: u8 = 6;
const OP_DELETE_ALARMS_PREFIX: u8 = 7;

/// Appends one op: a tag byte, then its fields (byte strings length-prefixed with a u32 LE,
/// tables as one byte, times as i64 LE).
fn encode_op(op: &WriteOp, out: &mut Vec<u8>) {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    match op {
        WriteOp::Put { table, key, value } => {
            out.extend_from_slice(&[OP_PUT, table_tag(*table)]);
            bytes(out, key);
            bytes(out, value);
        }
        WriteOp::Delete { table, key } => {
            out.extend_from_slice(&[OP_DELETE, table_tag(*table)]);
            bytes(out, key);
        }
        WriteOp::DeleteDataPrefix { prefix } => {
            out.push(OP_DELETE_DATA_PREFIX);
            bytes(out, prefix);
        }
        WriteOp::SetAlarm {
            object,
            at_ms: Some(at),
        } => {
            out.push(OP_SET_ALARM);
            bytes(out, object);
            out.extend_from_slice(&at.to_le_bytes());
        }
        WriteOp::SetAlarm {
            object,
            at_ms: None,
        } => {
            out.push(OP_DELETE_ALARM);
            bytes(out, object);
        }
        WriteOp::ClearAlarmIf { object, at_ms } => {
            out.push(OP_CLEAR_ALARM_IF);
            bytes(out, object);
            out.extend_from_slice(&at_ms.to_le_bytes());
        }
        WriteOp::DeleteAlarmsPrefix { prefix } => {
            out.push(OP_DELETE_ALARMS_PREFIX);
            bytes(out, prefix);
        }
    }
}

/// Decodes a payload written by [`encode_op`] calls, appending to `out`.
fn decode_ops(mut input: &[u8], out: &mut Vec<WriteOp>) -> Result<(), &'static str> {
    fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], &'static str> {
        let (head, rest) = input.split_at_checked(n).ok_or("truncated op")?;
        *input = rest;
        Ok(head)
    }
    fn bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
        let len = u32::from_le_bytes(take(input, 4)?.try_into().expect("4 bytes"));
        take(input, len as usize)
    }
    fn time(input: &mut &[u8]) -> Result<i64, &'static str> {
        Ok(i64::from_le_bytes(
            take(input, 8)?.try_into().expect("8 bytes"),
        ))
    }
    fn table(input: &mut &[u8]) -> Result<Table, &'static str> {
        match take(input, 1)?[0] {
            0 => Ok(Table::Data),
            1 => Ok(Table::Classes),
            2 => Ok(Table::Components),
            3 => Ok(Table::Meta),
            _ => Err("unknown table"),
        }
    }
    while !input.is_empty() {
        let tag = take(&mut input, 1)?[0];
        out.push(match tag {
            OP_PUT => WriteOp::Put {
                table: table(&mut input)?,
                key: bytes(&mut input)?.to_vec(),
                value: Bytes::copy_from_slice(bytes(&mut input)?),
            },
            OP_DELETE => WriteOp::Delete {
                table: table(&mut input)?,
                key: bytes(&mut input)?.to_vec(),
            },
            OP_DELETE_DATA_PREFIX => WriteOp::DeleteDataPrefix {
                prefix: bytes(&mut input)?.to_vec(),
            },
            OP_SET_ALARM => WriteOp::SetAlarm {
                object: bytes(&mut input)?.to_vec(),
                at_ms: Some(time(&mut input)?),
            },
            OP_DELETE_ALARM => WriteOp::SetAlarm {
                object: bytes(&mut input)?.to_vec(),
                at_ms: None,
            },
            OP_CLEAR_ALARM_IF => WriteOp::ClearAlarmIf {
                object: bytes(&mut input)?.to_vec(),
                at_ms: time(&mut input)?,
            },
            OP_DELETE_ALARMS_PREFIX => WriteOp::DeleteAlarmsPrefix {
                prefix: bytes(&mut input)?.to_vec(),
            },
            _ => return Err("unknown op"),
        });
    }
    Ok(())
}

fn table_tag(table: Table) -> u8 {
    match table {
        Table::Data => 0,
        Table::Classes => 1,
        Table::Components => 2,
        Table::Meta => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::commit::put;

    fn get(db: &Database, key: &str) -> Option<Vec<u8>> {
        use redb::ReadableDatabase;
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(schema::DATA).unwrap();
        table
            .get(key.as_bytes())
            .unwrap()
            .map(|v| v.value().to_vec())
    }

    /// A database and its log in a fresh dir; "crashing" is dropping both without checkpoint.
    fn open(dir: &Path) -> (Database, Recovery) {
        let db = Database::create(dir.join(super::super::DB_FILE)).unwrap();
        super::super::commit::create_tables(&db).unwrap();
        let recovery = Log::open(dir, &db, true).unwrap();
        (db, recovery)
    }

    #[test]
    fn every_op_round_trips() {
        let ops = vec![
            put("k", "v"),
            WriteOp::Put {
                table: Table::Components,
                key: b"abc".to_vec(),
                value: Bytes::new(),
            },
            WriteOp::Delete {
                table: Table::Meta,
                key: b"m".to_vec(),
            },
            WriteOp::DeleteDataPrefix { prefix: vec![1, 2] },
            WriteOp::SetAlarm {
                object: vec![3; 40],
                at_ms: Some(-7),
            },
            WriteOp::SetAlarm {
                object: vec![4; 40],
                at_ms: None,
            },
            WriteOp::ClearAlarmIf {
                object: vec![5],
                at_ms: i64::MAX,
            },
            WriteOp::DeleteAlarmsPrefix { prefix: vec![] },
        ];
        let mut bytes = Vec::new();
        for op in &ops {
            encode_op(op, &mut bytes);
        }
        let mut decoded = Vec::new();
        decode_ops(&bytes, &mut decoded).unwrap();
        assert_eq!(format!("{ops:?}"), format!("{decoded:?}"));
        assert!(decode_ops(&bytes[..bytes.len() - 1], &mut Vec::new()).is_err());
    }

    #[test]
    fn logged_groups_are_replayed_after_a_crash_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_db, mut recovery) = open(dir.path());
            assert_eq!(recovery.replayed_groups, 0);
            assert_eq!(
                std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(),
                WAL_CAPACITY
            );
            assert_eq!(
                recovery.log.append([put("a", "1")].iter()).unwrap(),
                Some(1)
            );
            assert_eq!(
                recovery
                    .log
                    .append([put("b", "2"), put("a", "3")].iter())
                    .unwrap(),
                Some(2)
            );
        }
        let (db, recovery) = open(dir.path());
        assert_eq!(recovery.replayed_groups, 2);
        assert_eq!(get(&db, "a").as_deref(), Some(&b"3"[..]));
        assert_eq!(get(&db, "b").as_deref(), Some(&b"2"[..]));
        drop((db, recovery));
        // The replay was checkpointed: the records are stale now.
        let (db, mut recovery) = open(dir.path());
        assert_eq!(recovery.replayed_groups, 0);
        // A shorter record over the stale ones: only it is replayed next time.
        assert_eq!(
            recovery.log.append([put("c", "4")].iter()).unwrap(),
            Some(3)
        );
        drop((db, recovery));
        let (db, recovery) = open(dir.path());
        assert_eq!(recovery.replayed_groups, 1);
        assert_eq!(get(&db, "c").as_deref(), Some(&b"4"[..]));
    }

    #[test]
    fn a_torn_record_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_db, mut recovery) = open(dir.path());
            recovery.log.append([put("a", "1")].iter()).unwrap();
            recovery.log.append([put("b", "2")].iter()).unwrap();
        }
        // Flip the last byte of the second record (its value).
        let path = dir.path().join(WAL_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let first = HEADER_LEN + u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let second =
            HEADER_LEN + u32::from_le_bytes(bytes[first..first + 4].try_into().unwrap()) as usize;
        bytes[first + second - 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (db, recovery) = open(dir.path());
        assert_eq!(recovery.replayed_groups, 1);
        assert!(get(&db, "a").is_some());
        assert!(get(&db, "b").is_none());
    }

    #[test]
    fn a_log_found_beside_a_database_never_checkpointed_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_db, mut recovery) = open(dir.path());
            recovery.log.append([put("a", "1")].iter()).unwrap();
        }
        std::fs::remove_file(dir.path().join(super::super::DB_FILE)).unwrap();
        let (db, recovery) = open(dir.path());
        assert_eq!(recovery.replayed_groups, 0);
        assert!(get(&db, "a").is_none());
    }

    #[test]
    fn a_group_too_big_for_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, mut recovery) = open(dir.path());
        let huge = WriteOp::Put {
            table: Table::Components,
            key: b"big".to_vec(),
            value: Bytes::from(vec![0u8; WAL_CAPACITY as usize]),
        };
        assert_eq!(recovery.log.append([huge].iter()).unwrap(), None);
        assert_eq!(
            recovery.log.append([put("a", "1")].iter()).unwrap(),
            Some(1)
        );
    }
}
