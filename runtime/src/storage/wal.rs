//! The write-ahead log: where a group commit becomes durable, and what tells a crash's torn
//! tail from damage.
//!
//! The writer thread appends each group's write ops to `duro.wal` as one record and syncs it
//! (`fdatasync` of one or two pages of a preallocated file, ~0.2 ms here), then applies the group
//! to redb *without* fsync. Every `checkpoint_interval` (or when a record does not fit) a group
//! is committed to redb durably instead, with the sequence number of the last group it covers in
//! META; the log then starts a new round at [`RECORDS_START`]. A redb commit without durability
//! is lost on a crash but leaves the file at its last durable commit, so after a crash
//! [`Log::open`] replays the records that follow the checkpoint, in order, in one durable
//! transaction, before anything reads the database.
//!
//! Layout: two header slots (offsets 0 and 512, one sector each, written alternately with each
//! round's first record and synced with it, so a torn header write leaves the other slot) say
//! which database the log belongs to and which checkpoint its records continue; records start at
//! 4 KiB. Header: `[magic 8][version u32][slot round u32][database id 16][checkpoint u64][crc32]`.
//! Record: `[payload len u32][crc32 of seq + payload][seq u64][payload]`, the payload being the
//! group's ops (see [`encode_op`]). All integers little-endian.
//!
//! Replay takes records while the checksum holds and sequence numbers run on from the checkpoint.
//! A record is appended only after the one before it is synced, so the first bad record can only
//! be a torn tail: a valid record of the same round *after* it means damage in the middle, and
//! the start is refused. So is a log that is missing after an unclean stop, belongs to another
//! database, or continues a checkpoint the database does not have — unless the operator accepts
//! the loss (`--accept-log-damage`), as databases do.

use std::fs::{File, OpenOptions};
use std::io;
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
/// Where records start; the header slots live before.
pub const RECORDS_START: u64 = 4096;
/// The header slots, one sector each.
const SLOTS: [u64; 2] = [0, 512];
const MAGIC: &[u8; 8] = b"DURO-WAL";
const VERSION: u32 = 1;
const SLOT_LEN: usize = 44;
/// META key holding the sequence number of the last group the durable redb state includes.
const CHECKPOINT_KEY: &str = "wal_checkpoint_seq";
/// META key of the database's identity, which its log's header repeats.
const DB_ID_KEY: &str = "db_id";
/// META key: `[1]` after a clean stop (the log holds nothing redb lacks), `[0]` while serving.
const CLEAN_KEY: &str = "wal_clean";
const RECORD_HEADER_LEN: usize = 16;
/// Largest encoding buffer kept between groups; a bigger one (a large upload) is freed.
const MAX_KEPT_BUFFER: usize = 1024 * 1024;

/// The log's storage: a file, or in tests a simulated disk that loses unsynced writes.
pub trait LogFile: Send {
    /// Every byte of the file.
    fn read_all(&self) -> io::Result<Vec<u8>>;
    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every write so far durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
}

impl LogFile for File {
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = self.metadata()?.len();
        let mut bytes = vec![0; usize::try_from(len).map_err(io::Error::other)?];
        self.read_exact_at(&mut bytes, 0)?;
        Ok(bytes)
    }

    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        self.write_all_at(data, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// The open log, owned by the writer thread.
pub struct Log {
    file: Box<dyn LogFile>,
    /// Where the next record goes.
    offset: u64,
    /// The sequence number of the next group.
    next_seq: u64,
    /// The checkpoint this round's records continue, and the header slot that says so; written
    /// with the round's first record.
    round: Round,
    db_id: [u8; 16],
    /// `false` only with `--unsafe-no-fsync`: records reach the page cache, not the disk.
    sync: bool,
    /// Reused encoding buffer.
    buf: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Round {
    checkpoint: u64,
    /// Counts rounds; picks the slot (`number % 2`).
    number: u32,
    header_written: bool,
}

/// What [`Log::open`] found.
pub struct Recovery {
    pub log: Log,
    /// Groups replayed into redb from the log (0 after a clean shutdown).
    pub replayed_groups: u64,
    /// The damage accepted with `accept_damage`, if any.
    pub accepted_damage: Option<LogDamage>,
}

/// Why a log cannot be trusted. Refused at start unless the loss is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogDamage {
    #[error(
        "the write-ahead log is missing, but the database was not stopped cleanly: the writes \
         acknowledged since its last checkpoint would be lost"
    )]
    Missing,
    #[error("the file is not a duro write-ahead log (no valid header)")]
    NoHeader,
    #[error(
        "the log is {len} bytes, shorter than the {WAL_CAPACITY} it is created with: it was cut"
    )]
    Truncated { len: u64 },
    #[error("the log was written by another version of duro (log format {0})")]
    Version(u32),
    #[error("the log belongs to another database (its id differs)")]
    Foreign,
    #[error(
        "the log continues checkpoint {log} but the database is at checkpoint {db}: the \
         database file is older than its log (restored from an older copy?)"
    )]
    AheadOfDatabase { log: u64, db: u64 },
    #[error(
        "record {seq} at offset {offset} is damaged and {after} valid records of the same round \
         follow it: this is not a torn tail"
    )]
    Middle { seq: u64, offset: u64, after: u64 },
    #[error("record {seq} has a valid checksum but cannot be decoded: {what}")]
    Undecodable { seq: u64, what: &'static str },
}

/// Why the log could not be opened or replayed. The runtime refuses to start: serving without
/// the replayed writes would lose acknowledged data.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("cannot use the write-ahead log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "refusing to start: {damage} ({path}). Restore the data dir from a backup, or start \
         with --accept-log-damage to replay what can be read and lose the rest"
    )]
    Damaged { path: PathBuf, damage: LogDamage },
    #[error("cannot replay the write-ahead log into the database: {0}")]
    Database(#[from] redb::Error),
}

/// What META says about the log.
struct DbState {
    checkpoint: Option<u64>,
    db_id: Option<[u8; 16]>,
    clean: bool,
}

impl Log {
    /// Opens (creating and preallocating if needed) the log `duro.wal` in `data_dir` beside
    /// `db`, replays the groups that follow redb's last checkpoint and checkpoints them, so the
    /// log holds nothing redb lacks on return. Damage is refused unless `accept_damage`.
    pub fn open(
        data_dir: &Path,
        db: &Database,
        sync: bool,
        accept_damage: bool,
    ) -> Result<Recovery, RecoverError> {
        let path = data_dir.join(WAL_FILE);
        let io = |source| RecoverError::Io {
            path: path.clone(),
            source,
        };
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if !existed {
            // The new file's name must survive a crash too.
            File::open(data_dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Self::recover(Box::new(file), existed, db, sync, accept_damage).map_err(|e| match e {
            Recover::Io(source) => RecoverError::Io { path, source },
            Recover::Damaged(damage) => RecoverError::Damaged { path, damage },
            Recover::Database(e) => RecoverError::Database(e),
        })
    }

    /// [`Log::open`] over any [`LogFile`]; `existed` says whether it was there before.
    pub fn recover(
        mut file: Box<dyn LogFile>,
        existed: bool,
        db: &Database,
        sync: bool,
        accept_damage: bool,
    ) -> Result<Recovery, Recover> {
        let state = read_state(db)?;
        let db_id = match state.db_id {
            Some(id) => id,
            None => new_db_id(),
        };
        let mut replayed_groups = 0;
        let mut accepted_damage = None;
        let mut last = state.checkpoint.unwrap_or(0);
        let mut zero = !existed;
        if let Some(checkpoint) = state.checkpoint {
            let bytes = if existed {
                file.read_all()?
            } else {
                Vec::new()
            };
            let found = records_after(existed.then_some(&bytes[..]), &state, &db_id, checkpoint);
            // A database of a duro without log headers: its log is rewritten in today's format.
            zero |= state.db_id.is_none();
            let (records, damage) = match found {
                Ok(records) => (records, None),
                Err(damage) if accept_damage => {
                    let readable = match &damage {
                        LogDamage::Middle { .. }
                        | LogDamage::Undecodable { .. }
                        | LogDamage::Truncated { .. } => {
                            scan(&bytes, RECORDS_START as usize, checkpoint + 1).records
                        }
                        _ => Vec::new(),
                    };
                    (readable, Some(damage))
                }
                Err(damage) => return Err(Recover::Damaged(damage)),
            };
            let mut ops = Vec::new();
            let mut replayable = 0;
            for (seq, payload) in &records {
                match decode_ops(payload, &mut ops) {
                    Ok(()) => replayable += 1,
                    Err(what) if accept_damage => {
                        accepted_damage.get_or_insert(LogDamage::Undecodable { seq: *seq, what });
                        break;
                    }
                    Err(what) => {
                        return Err(Recover::Damaged(LogDamage::Undecodable { seq: *seq, what }));
                    }
                }
            }
            if let Some(damage) = damage {
                accepted_damage = Some(damage);
            }
            if replayable > 0 {
                last = records[replayable - 1].0;
                replayed_groups = replayable as u64;
            }
            checkpoint_durably(db, &ops[..], last, Some(&db_id))?;
            // After accepted damage the records left behind could look like a later round's.
            zero |= accepted_damage.is_some();
        } else {
            // A database never checkpointed (fresh) takes no record from a file found beside it.
            zero = true;
            checkpoint_durably(db, &[], 0, Some(&db_id))?;
        }
        if zero {
            preallocate(file.as_mut())?;
        }
        let mut log = Log {
            file,
            offset: RECORDS_START,
            next_seq: last + 1,
            round: Round {
                checkpoint: last,
                number: 0,
                header_written: false,
            },
            db_id,
            sync,
            buf: Vec::new(),
        };
        // The header of this round goes down now, so the log is recognisable from the start.
        log.write_header()?;
        log.file.sync()?;
        Ok(Recovery {
            log,
            replayed_groups,
            accepted_damage,
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
        self.buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
        for op in ops {
            encode_op(op, &mut self.buf);
        }
        let payload_len = self.buf.len() - RECORD_HEADER_LEN;
        if self.offset + self.buf.len() as u64 > WAL_CAPACITY || payload_len > u32::MAX as usize {
            self.buf = Vec::new(); // a component upload's bytes: do not keep them around
            return Ok(None);
        }
        self.buf[8..16].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        if !self.round.header_written {
            self.write_header()?;
        }
        self.file.write_at(&self.buf, self.offset)?;
        if self.sync {
            self.file.sync()?;
        }
        self.offset += self.buf.len() as u64;
        self.next_seq += 1;
        if self.buf.capacity() > MAX_KEPT_BUFFER {
            self.buf = Vec::new();
        }
        Ok(Some(seq))
    }

    /// For a group committed to redb durably instead of logged: takes its sequence number and
    /// stores it in `txn` as the checkpoint (and whether this is the clean stop's). Once `txn`
    /// is durable, call [`Log::checkpointed`].
    pub fn stamp_checkpoint(
        &mut self,
        txn: &redb::WriteTransaction,
        clean: bool,
    ) -> Result<(), redb::Error> {
        let seq = self.next_seq;
        self.next_seq += 1;
        write_checkpoint(txn, seq, None, clean)
    }

    /// Whether records were appended since the last checkpoint.
    pub fn is_empty(&self) -> bool {
        self.offset == RECORDS_START
    }

    /// After a durable redb commit stamped by [`Log::stamp_checkpoint`]: every record is
    /// covered, the log starts a new round (its header goes down with its first record).
    pub fn checkpointed(&mut self) {
        self.offset = RECORDS_START;
        self.round = Round {
            checkpoint: self.next_seq - 1,
            number: self.round.number.wrapping_add(1),
            header_written: false,
        };
    }

    /// Writes this round's header into its slot (the other slot keeps the previous round's).
    fn write_header(&mut self) -> io::Result<()> {
        let slot = header_slot(self.round.number, &self.db_id, self.round.checkpoint);
        self.file
            .write_at(&slot, SLOTS[(self.round.number % 2) as usize])?;
        self.round.header_written = true;
        Ok(())
    }
}

/// The bytes of a header slot.
fn header_slot(round: u32, db_id: &[u8; 16], checkpoint: u64) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[0..8].copy_from_slice(MAGIC);
    slot[8..12].copy_from_slice(&VERSION.to_le_bytes());
    slot[12..16].copy_from_slice(&round.to_le_bytes());
    slot[16..32].copy_from_slice(db_id);
    slot[32..40].copy_from_slice(&checkpoint.to_le_bytes());
    let crc = crc32fast::hash(&slot[..40]);
    slot[40..44].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// [`Log::recover`]'s failures, before they are tied to a path.
#[derive(Debug)]
pub enum Recover {
    Io(io::Error),
    Damaged(LogDamage),
    Database(redb::Error),
}

impl From<io::Error> for Recover {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<redb::Error> for Recover {
    fn from(e: redb::Error) -> Self {
        Self::Database(e)
    }
}

/// The records a start replays from the log (`None`: the file is missing), or the damage that
/// makes it refuse.
fn records_after<'a>(
    bytes: Option<&'a [u8]>,
    state: &DbState,
    db_id: &[u8; 16],
    checkpoint: u64,
) -> Result<Vec<(u64, &'a [u8])>, LogDamage> {
    let Some(bytes) = bytes else {
        return if state.clean {
            Ok(Vec::new())
        } else {
            Err(LogDamage::Missing)
        };
    };
    if (bytes.len() as u64) < WAL_CAPACITY {
        return Err(LogDamage::Truncated {
            len: bytes.len() as u64,
        });
    }
    if state.db_id.is_none() {
        // Written by a duro without log headers: records start at offset 0.
        return Ok(scan(bytes, 0, checkpoint + 1).records);
    }
    let records = read_log(bytes, db_id, checkpoint)?;
    let mut ops = Vec::new();
    for (seq, payload) in &records {
        decode_ops(payload, &mut ops).map_err(|what| LogDamage::Undecodable { seq: *seq, what })?;
    }
    Ok(records)
}

/// What a start would find in the log of `data_dir` beside `db`, without replaying or changing
/// anything: how many groups it would replay, or the damage that would refuse it.
pub fn inspect(data_dir: &Path, db: &Database) -> Result<u64, String> {
    let state = read_state(db).map_err(|e| format!("cannot read its checkpoint: {e}"))?;
    let Some(checkpoint) = state.checkpoint else {
        return Ok(0);
    };
    let bytes = std::fs::read(data_dir.join(WAL_FILE)).ok();
    let db_id = state.db_id.unwrap_or_default();
    records_after(bytes.as_deref(), &state, &db_id, checkpoint)
        .map(|r| r.len() as u64)
        .map_err(|damage| damage.to_string())
}

/// The log fuzz target's body: `data` as the records of a round after a valid header.
pub fn fuzz_log(data: &[u8]) {
    let db_id = [9u8; 16];
    let mut bytes = vec![0u8; RECORDS_START as usize];
    bytes[..SLOT_LEN].copy_from_slice(&header_slot(0, &db_id, 0));
    bytes.extend_from_slice(data);
    if let Ok(records) = read_log(&bytes, &db_id, 0) {
        for (_, payload) in records {
            let mut ops = Vec::new();
            if decode_ops(payload, &mut ops).is_ok() {
                let mut again = Vec::new();
                for op in &ops {
                    encode_op(op, &mut again);
                }
                assert_eq!(again, payload, "decoded ops encode back to their bytes");
            }
        }
    }
}

/// A header slot as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    version: u32,
    db_id: [u8; 16],
    checkpoint: u64,
}

fn parse_slot(bytes: &[u8]) -> Option<Header> {
    let slot = bytes.get(..SLOT_LEN)?;
    let crc = u32::from_le_bytes(slot[40..44].try_into().expect("4 bytes"));
    if &slot[0..8] != MAGIC || crc32fast::hash(&slot[..40]) != crc {
        return None;
    }
    Some(Header {
        version: u32::from_le_bytes(slot[8..12].try_into().expect("4 bytes")),
        db_id: slot[16..32].try_into().expect("16 bytes"),
        checkpoint: u64::from_le_bytes(slot[32..40].try_into().expect("8 bytes")),
    })
}

/// The records a log holds beyond the database's `checkpoint`, or why it cannot be trusted.
fn read_log<'a>(
    bytes: &'a [u8],
    db_id: &[u8; 16],
    checkpoint: u64,
) -> Result<Vec<(u64, &'a [u8])>, LogDamage> {
    let header = SLOTS
        .iter()
        .filter_map(|at| parse_slot(bytes.get(*at as usize..)?))
        .max_by_key(|h| h.checkpoint)
        .ok_or(LogDamage::NoHeader)?;
    if header.version != VERSION {
        return Err(LogDamage::Version(header.version));
    }
    if &header.db_id != db_id {
        return Err(LogDamage::Foreign);
    }
    if header.checkpoint > checkpoint {
        return Err(LogDamage::AheadOfDatabase {
            log: header.checkpoint,
            db: checkpoint,
        });
    }
    if header.checkpoint < checkpoint {
        // No record of the round after the database's checkpoint was synced (its header goes
        // down with its first record): everything in the log is covered already.
        return Ok(Vec::new());
    }
    let scanned = scan(bytes, RECORDS_START as usize, checkpoint + 1);
    let last = scanned.records.last().map_or(checkpoint, |(seq, _)| *seq);
    let after = later_records(bytes, scanned.end + 1, last);
    if after > 0 {
        return Err(LogDamage::Middle {
            seq: last + 1,
            offset: scanned.end as u64,
            after,
        });
    }
    Ok(scanned.records)
}

/// What [`scan`] read.
struct Scanned<'a> {
    records: Vec<(u64, &'a [u8])>,
    /// Where the first record that is not next in line starts.
    end: usize,
}

/// The records of `bytes` from `start` whose sequence numbers run on from `first_seq`.
fn scan(bytes: &[u8], start: usize, first_seq: u64) -> Scanned<'_> {
    let mut records = Vec::new();
    let mut offset = start;
    let mut expected = first_seq;
    while let Some(payload) = record_at(bytes, offset, |seq| seq == expected) {
        records.push((expected, payload));
        expected += 1;
        offset += RECORD_HEADER_LEN + payload.len();
    }
    Scanned {
        records,
        end: offset,
    }
}

/// The payload of a record at `offset` whose checksum holds and whose sequence number passes
/// `wanted`.
fn record_at(bytes: &[u8], offset: usize, wanted: impl Fn(u64) -> bool) -> Option<&[u8]> {
    let header = bytes.get(offset..offset.checked_add(RECORD_HEADER_LEN)?)?;
    let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if !wanted(seq) {
        return None;
    }
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let start = offset + RECORD_HEADER_LEN;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..16]);
    hasher.update(payload);
    (hasher.finalize() == crc).then_some(payload)
}

/// How many valid records with a sequence number after `last` start at or after `from`. Stale
/// records of earlier rounds have lower numbers, so any such record is one the replay could not
/// reach: the log is damaged before it.
fn later_records(bytes: &[u8], from: usize, last: u64) -> u64 {
    /// Sequence numbers further ahead are not taken for records of this round.
    const WINDOW: u64 = 1 << 32;
    let mut found = 0;
    let mut offset = from;
    while offset + RECORD_HEADER_LEN <= bytes.len() {
        if let Some(payload) = record_at(bytes, offset, |seq| seq > last && seq - last <= WINDOW) {
            found += 1;
            offset += RECORD_HEADER_LEN + payload.len();
        } else {
            offset += 1;
        }
    }
    found
}

/// Applies `ops` and stores `seq` as the checkpoint (with the database's id when given), in one
/// durable transaction; marks the database as serving (not cleanly stopped).
fn checkpoint_durably(
    db: &Database,
    ops: &[WriteOp],
    seq: u64,
    db_id: Option<&[u8; 16]>,
) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    apply_ops(&txn, ops.iter())?;
    write_checkpoint(&txn, seq, db_id, false)?;
    txn.commit()?;
    Ok(())
}

/// Marks a copy of the database as cleanly stopped: a server starting on it expects no log.
pub(super) fn mark_clean(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(schema::META)?
        .insert(CLEAN_KEY, [1u8].as_slice())?;
    Ok(())
}

/// Stores `seq` as the last group the durable state includes, and whether this is a clean stop;
/// part of a checkpoint commit.
fn write_checkpoint(
    txn: &redb::WriteTransaction,
    seq: u64,
    db_id: Option<&[u8; 16]>,
    clean: bool,
) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(schema::META)?;
    meta.insert(CHECKPOINT_KEY, seq.to_le_bytes().as_slice())?;
    meta.insert(CLEAN_KEY, [u8::from(clean)].as_slice())?;
    if let Some(id) = db_id {
        meta.insert(DB_ID_KEY, id.as_slice())?;
    }
    Ok(())
}

fn read_state(db: &Database) -> Result<DbState, redb::Error> {
    let read = |key| super::read_str_table(db, schema::META, key);
    Ok(DbState {
        checkpoint: read(CHECKPOINT_KEY)?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_le_bytes),
        db_id: read(DB_ID_KEY)?.and_then(|v| v.try_into().ok()),
        clean: read(CLEAN_KEY)?.is_some_and(|v| v == [1]),
    })
}

fn new_db_id() -> [u8; 16] {
    let mut id = [0; 16];
    getrandom::fill(&mut id).expect("the OS random source is available");
    id
}

/// Fills the file with zeros up to the capacity and syncs it, so that appends overwrite
/// allocated blocks and `fdatasync` has no size or extent change to write, and nothing of an
/// earlier log is left to be taken for records.
fn preallocate(file: &mut dyn LogFile) -> io::Result<()> {
    let zeros = vec![0u8; 1024 * 1024];
    let mut written = 0;
    while written < WAL_CAPACITY {
        let n = zeros.len().min((WAL_CAPACITY - written) as usize);
        file.write_at(&zeros[..n], written)?;
        written += n as u64;
    }
    file.sync()
}

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_DATA_PREFIX: u8 = 3;
const OP_SET_ALARM: u8 = 4;
const OP_DELETE_ALARM: u8 = 5;
const OP_CLEAR_ALARM_IF: u8 = 6;
const OP_DELETE_ALARMS_PREFIX: u8 = 7;
const OP_RECORD_ALARM_RETRY: u8 = 8;

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
        WriteOp::RecordAlarmRetry { object, retry } => {
            out.push(OP_RECORD_ALARM_RETRY);
            bytes(out, object);
            out.extend_from_slice(&retry.encode());
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
            OP_RECORD_ALARM_RETRY => WriteOp::RecordAlarmRetry {
                object: bytes(&mut input)?.to_vec(),
                retry: schema::AlarmRetry::decode(take(&mut input, 20)?).ok_or("bad retry")?,
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

    fn try_open(dir: &Path, accept: bool) -> Result<(Database, Recovery), RecoverError> {
        let db = Database::create(dir.join(super::super::DB_FILE)).unwrap();
        super::super::commit::create_tables(&db).unwrap();
        let recovery = Log::open(dir, &db, true, accept)?;
        Ok((db, recovery))
    }

    /// A database and its log; "crashing" is dropping both without a final checkpoint.
    fn open(dir: &Path) -> (Database, Recovery) {
        try_open(dir, false).unwrap()
    }

    fn damage(dir: &Path) -> LogDamage {
        match try_open(dir, false) {
            Err(RecoverError::Damaged { damage, .. }) => damage,
            Err(other) => panic!("not damage: {other}"),
            Ok(_) => panic!("the damaged log was accepted"),
        }
    }

    /// Appends one group per key (`key` = "1"), then crashes.
    fn crash_after(dir: &Path, keys: &[&str]) {
        let (_db, mut recovery) = open(dir);
        for key in keys {
            recovery.log.append([put(key, "1")].iter()).unwrap();
        }
    }

    /// Stops the way the committer does at a clean shutdown.
    fn stop_cleanly(db: &Database, log: &mut Log) {
        let txn = db.begin_write().unwrap();
        log.stamp_checkpoint(&txn, true).unwrap();
        txn.commit().unwrap();
        log.checkpointed();
    }

    fn wal(dir: &Path) -> PathBuf {
        dir.join(WAL_FILE)
    }

    /// Offsets of the records from `RECORDS_START`, in order, until a zero length.
    fn record_offsets(bytes: &[u8]) -> Vec<usize> {
        let mut offsets = Vec::new();
        let mut at = RECORDS_START as usize;
        loop {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if len == 0 {
                return offsets;
            }
            offsets.push(at);
            at += RECORD_HEADER_LEN + len;
        }
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
            WriteOp::RecordAlarmRetry {
                object: vec![6; 40],
                retry: schema::AlarmRetry {
                    at_ms: 5,
                    retry_count: 3,
                    not_before_ms: -1,
                },
            },
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
                std::fs::metadata(wal(dir.path())).unwrap().len(),
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
    fn a_torn_last_record_ends_the_replay_without_complaint() {
        let dir = tempfile::tempdir().unwrap();
        crash_after(dir.path(), &["a", "b"]);
        let mut bytes = std::fs::read(wal(dir.path())).unwrap();
        let offsets = record_offsets(&bytes);
        // Flip the last byte of the last record (its value).
        let len = u32::from_le_bytes(bytes[offsets[1]..offsets[1] + 4].try_into().unwrap());
        bytes[offsets[1] + RECORD_HEADER_LEN + len as usize - 1] ^= 1;
        std::fs::write(wal(dir.path()), &bytes).unwrap();
        let (db, recovery) = open(dir.path());
        assert_eq!(recovery.replayed_groups, 1);
        assert!(get(&db, "a").is_some());
        assert!(get(&db, "b").is_none());
    }

    #[test]
    fn damage_in_the_middle_is_refused_unless_accepted() {
        let dir = tempfile::tempdir().unwrap();
        crash_after(dir.path(), &["a", "b", "c", "d"]);
        let mut bytes = std::fs::read(wal(dir.path())).unwrap();
        let offsets = record_offsets(&bytes);
        bytes[offsets[1] + RECORD_HEADER_LEN + 2] ^= 0x40;
        std::fs::write(wal(dir.path()), &bytes).unwrap();
        assert_eq!(
            damage(dir.path()),
            LogDamage::Middle {
                seq: 2,
                offset: offsets[1] as u64,
                after: 2
            }
        );
        // Refusing changed nothing: the same damage is found again.
        assert!(matches!(damage(dir.path()), LogDamage::Middle { .. }));
        let (db, recovery) = try_open(dir.path(), true).unwrap();
        assert_eq!(recovery.replayed_groups, 1);
        assert!(matches!(
            recovery.accepted_damage,
            Some(LogDamage::Middle { .. })
        ));
        assert!(get(&db, "a").is_some() && get(&db, "c").is_none());
        drop((db, recovery));
        // Accepted once: the log was cleared, the next start is clean.
        let (_db, recovery) = open(dir.path());
        assert!(recovery.accepted_damage.is_none());
    }

    #[test]
    fn a_cut_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        crash_after(dir.path(), &["a", "b"]);
        let bytes = std::fs::read(wal(dir.path())).unwrap();
        let cut = record_offsets(&bytes)[1] + 3;
        std::fs::write(wal(dir.path()), &bytes[..cut]).unwrap();
        assert_eq!(damage(dir.path()), LogDamage::Truncated { len: cut as u64 });
        let (db, recovery) = try_open(dir.path(), true).unwrap();
        assert_eq!(recovery.replayed_groups, 1);
        assert!(get(&db, "a").is_some());
    }

    #[test]
    fn a_missing_log_is_refused_after_a_crash_but_not_after_a_clean_stop() {
        let dir = tempfile::tempdir().unwrap();
        crash_after(dir.path(), &["a"]);
        std::fs::remove_file(wal(dir.path())).unwrap();
        assert_eq!(damage(dir.path()), LogDamage::Missing);
        let (db, mut recovery) = try_open(dir.path(), true).unwrap();
        stop_cleanly(&db, &mut recovery.log);
        drop((db, recovery));
        std::fs::remove_file(wal(dir.path())).unwrap();
        let (_db, recovery) = open(dir.path());
        assert!(recovery.accepted_damage.is_none());
    }

    #[test]
    fn a_log_of_another_database_is_refused() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        crash_after(one.path(), &["a"]);
        crash_after(two.path(), &["b"]);
        std::fs::copy(wal(one.path()), wal(two.path())).unwrap();
        assert_eq!(damage(two.path()), LogDamage::Foreign);
        std::fs::write(wal(two.path()), vec![7u8; WAL_CAPACITY as usize]).unwrap();
        assert_eq!(damage(two.path()), LogDamage::NoHeader);
    }

    #[test]
    fn a_database_older_than_its_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db_file = dir.path().join(super::super::DB_FILE);
        let (db, mut recovery) = open(dir.path());
        let old = std::fs::read(&db_file).unwrap();
        // A checkpoint, then a record of the new round: the log continues that checkpoint.
        stop_cleanly(&db, &mut recovery.log);
        recovery.log.append([put("a", "1")].iter()).unwrap();
        drop((db, recovery));
        std::fs::write(&db_file, old).unwrap();
        assert!(matches!(
            damage(dir.path()),
            LogDamage::AheadOfDatabase { .. }
        ));
    }

    #[test]
    fn a_log_found_beside_a_database_never_checkpointed_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        crash_after(dir.path(), &["a"]);
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
