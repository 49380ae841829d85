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
//! Records are runs of sectors with a checksum each (`sectors.rs`), their payload the group's
//! ops (`ops.rs`). All integers little-endian.
//!
//! Replay takes records while they are whole and sequence numbers run on from the checkpoint.
//! What follows the last one is told apart: nothing (the log ends), a **torn** record (a crash
//! during its write; never acknowledged: dropped, and said at warn level), or a **damaged** one
//! (every sector written, some fail their checksum: acknowledged writes may be lost). A record
//! is appended only after the one before it is synced, so a whole record of the same round
//! *after* the last one read means damage in the middle. Damage refuses the start, as does a
//! log that is missing after an unclean stop, belongs to another database, or continues a
//! checkpoint the database does not have — unless the operator accepts the loss
//! (`--accept-log-damage`), as databases do. `duro check` reports the same without replaying.

mod legacy;
mod ops;
mod reading;
mod sectors;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use redb::{Database, Durability};

use super::apply::apply_ops;
use crate::storage::ops::WriteOp;
use crate::storage::schema;
use ops::encode_op;
use reading::{Reading, read};
pub use reading::{fuzz_log, inspect};

/// File name of the log inside the data dir.
pub const WAL_FILE: &str = "duro.wal";
/// Size of the preallocated log. Records that would not fit force a checkpoint instead.
pub const WAL_CAPACITY: u64 = 8 * 1024 * 1024;
/// Where records start; the header slots live before.
pub const RECORDS_START: u64 = 4096;
/// The header slots, one sector each.
const SLOTS: [u64; 2] = [0, 512];
const MAGIC: &[u8; 8] = b"DURO-WAL";
/// The log format written: 2 is records of checksummed sectors; 1 (read on upgrade) was
/// records with one checksum each.
const VERSION: u32 = 2;
const SLOT_LEN: usize = 44;
/// META key holding the sequence number of the last group the durable redb state includes.
const CHECKPOINT_KEY: &str = "wal_checkpoint_seq";
/// META key of the database's identity, which its log's header repeats.
const DB_ID_KEY: &str = "db_id";
/// META key: `[1]` after a clean stop (the log holds nothing redb lacks), `[0]` while serving.
const CLEAN_KEY: &str = "wal_clean";
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
    /// Reused buffers: the group's encoded ops, and the record framing them.
    ops: Vec<u8>,
    record: Vec<u8>,
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
    /// The incomplete record dropped after the replayed ones, if any.
    pub dropped: Option<TornRecord>,
    /// The damage accepted with `accept_damage`, if any.
    pub accepted_damage: Option<LogDamage>,
}

/// A record a crash interrupted: some of its sectors never reached the disk, so its group was
/// never acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "record {seq} at offset {offset} is incomplete ({written} of its {sectors} sectors, \
     {bytes} bytes, reached the disk): a crash during its write, so it was never acknowledged",
    bytes = sectors * sectors::SECTOR
)]
pub struct TornRecord {
    pub seq: u64,
    pub offset: u64,
    pub written: usize,
    pub sectors: usize,
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
    #[error(
        "the last record ({seq}, {sectors} sectors at offset {offset}) was written whole but \
         {garbled} of its sectors fail their checksum: it may hold acknowledged writes (the \
         disk or the file was damaged after the write; a crash during it leaves sectors \
         unwritten, not garbled)"
    )]
    LastRecord {
        seq: u64,
        offset: u64,
        sectors: usize,
        garbled: usize,
    },
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
        let db_id = state.db_id.unwrap_or_else(new_db_id);
        let reading = match state.checkpoint {
            Some(checkpoint) => {
                let bytes = if existed {
                    Some(file.read_all()?)
                } else {
                    None
                };
                read(bytes.as_deref(), &state, &db_id, checkpoint)
            }
            // A database never checkpointed (fresh) takes no record from a file found beside it.
            None => Reading::nothing(0),
        };
        if let Some(damage) = &reading.damage
            && !accept_damage
        {
            return Err(Recover::Damaged(damage.clone()));
        }
        checkpoint_durably(db, &reading.ops, reading.last, Some(&db_id))?;
        // After an unclean stop the log is zeroed once replayed: a dropped record's sectors,
        // whose sequence number the next group takes again, must never be read as its.
        if !existed || state.checkpoint.is_none() || !state.clean || reading.damage.is_some() {
            preallocate(file.as_mut())?;
        }
        let mut log = Log {
            file,
            offset: RECORDS_START,
            next_seq: reading.last + 1,
            round: Round {
                checkpoint: reading.last,
                number: 0,
                header_written: false,
            },
            db_id,
            sync,
            ops: Vec::new(),
            record: Vec::new(),
        };
        // The header of this round goes down now, so the log is recognisable from the start.
        log.write_header()?;
        log.file.sync()?;
        Ok(Recovery {
            log,
            replayed_groups: reading.groups,
            dropped: reading.torn,
            accepted_damage: reading.damage,
        })
    }

    /// Appends the group made of `ops` and makes it durable. `Ok(None)` when it does not fit in
    /// what is left of the log: the caller must checkpoint it instead (see [`Log::stamp_checkpoint`]).
    pub fn append<'a>(
        &mut self,
        ops: impl Iterator<Item = &'a WriteOp>,
    ) -> io::Result<Option<u64>> {
        let seq = self.next_seq;
        self.ops.clear();
        for op in ops {
            encode_op(op, &mut self.ops);
        }
        let size = sectors::record_size(self.ops.len()) as u64;
        if self.offset + size > WAL_CAPACITY || u32::try_from(self.ops.len()).is_err() {
            self.ops = Vec::new(); // a component upload's bytes: do not keep them around
            return Ok(None);
        }
        sectors::encode(seq, &self.ops, &mut self.record);
        if !self.round.header_written {
            self.write_header()?;
        }
        self.file.write_at(&self.record, self.offset)?;
        if self.sync {
            self.file.sync()?;
        }
        self.offset += size;
        self.next_seq += 1;
        if self.record.capacity() > MAX_KEPT_BUFFER {
            self.ops = Vec::new();
            self.record = Vec::new();
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
