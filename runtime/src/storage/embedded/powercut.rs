//! "Acknowledged means fsynced", proven with simulated power cuts: redb and the write-ahead log
//! run on a simulated disk that keeps every write in a volatile cache until its file is synced.
//! A cut keeps what was synced and, of the rest, a random subset of 512-byte sectors (writes
//! reach the platter in any order and may tear); a file's length, being one value of metadata,
//! survives as its synced length or one it took since. Recovery from what survived must hold every
//! write the committer acknowledged before the cut — key-value writes and SQL rows alike (an
//! object's SQLite pages are entries of its own). `kill -9` cannot show this: the page cache
//! survives a killed process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, StorageBackend};

use super::apply::create_tables;
use super::sink::RedbSink;
use super::wal::{Log, LogFile};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::storage::ObjectStorage;
use crate::storage::commit::{Committer, WriteOp};
use crate::storage::schema::{self, Table};
use crate::storage::sql::{SqlBudget, Value};

const SECTOR: usize = 512;

/// One file of the simulated disk.
#[derive(Default, Clone)]
struct FileState {
    /// What survives any cut.
    durable: Vec<u8>,
    /// What reads see: `durable` with the unsynced writes applied.
    current: Vec<u8>,
    /// Unsynced writes in order (a growth is a write of zeros; a shrink reaches the disk at once).
    unsynced: Vec<(u64, Vec<u8>)>,
    /// The lengths the file took since its last sync, in order. A length is metadata, one value
    /// in the inode: a cut leaves the synced one or one of these, never a length in between.
    lengths: Vec<usize>,
}

/// The disk: every file behind one lock, so a cut is one instant for all of them.
#[derive(Clone, Default)]
struct Disk(Arc<Mutex<HashMap<&'static str, FileState>>>);

impl Disk {
    fn with<T>(&self, name: &'static str, f: impl FnOnce(&mut FileState) -> T) -> T {
        f(self.0.lock().unwrap().entry(name).or_default())
    }

    /// The disk after a power cut now: synced bytes, and a random subset of the unsynced
    /// sectors of each file.
    fn cut(&self, rng: &mut Rng) -> Disk {
        let files = self.0.lock().unwrap();
        let survived = files
            .iter()
            .map(|(name, file)| {
                let mut bytes = file.durable.clone();
                for (offset, data) in &file.unsynced {
                    for (i, sector) in data.chunks(SECTOR).enumerate() {
                        if rng.next().is_multiple_of(2) {
                            let at = *offset as usize + i * SECTOR;
                            if bytes.len() < at + sector.len() {
                                bytes.resize(at + sector.len(), 0);
                            }
                            bytes[at..at + sector.len()].copy_from_slice(sector);
                        }
                    }
                }
                let lengths: Vec<usize> = std::iter::once(file.durable.len())
                    .chain(file.lengths.iter().copied())
                    .collect();
                let len = lengths[rng.next() as usize % lengths.len()];
                // Blocks past the written sectors read as zeros; sectors past the length are gone.
                bytes.resize(len, 0);
                let state = FileState {
                    durable: bytes.clone(),
                    current: bytes,
                    unsynced: Vec::new(),
                    lengths: Vec::new(),
                };
                (*name, state)
            })
            .collect();
        Disk(Arc::new(Mutex::new(survived)))
    }
}

/// A file of the simulated disk, as redb's backend and as the log's file.
#[derive(Clone)]
struct SimFile {
    disk: Disk,
    name: &'static str,
}

impl std::fmt::Debug for SimFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimFile({})", self.name)
    }
}

impl SimFile {
    fn write(&self, offset: u64, data: &[u8]) {
        self.disk.with(self.name, |file| {
            let end = offset as usize + data.len();
            if file.current.len() < end {
                file.current.resize(end, 0);
            }
            file.current[offset as usize..end].copy_from_slice(data);
            file.unsynced.push((offset, data.to_vec()));
            if file.lengths.last() != Some(&file.current.len()) {
                file.lengths.push(file.current.len());
            }
        });
    }

    fn sync(&self) {
        self.disk.with(self.name, |file| {
            file.durable = file.current.clone();
            file.unsynced.clear();
            file.lengths.clear();
        });
    }
}

impl StorageBackend for SimFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.disk.with(self.name, |f| f.current.len() as u64))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.disk.with(self.name, |file| {
            let start = offset as usize;
            match file.current.get(start..start + out.len()) {
                Some(bytes) => {
                    out.copy_from_slice(bytes);
                    Ok(())
                }
                None => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            }
        })
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let grow = self.disk.with(self.name, |file| {
            let old = file.current.len() as u64;
            if len < old {
                file.current.truncate(len as usize);
                // A shrink is metadata: modelled as reaching the disk at once.
                file.durable.truncate(len as usize);
                file.lengths.retain(|l| *l <= len as usize);
            }
            (len > old).then_some(old)
        });
        if let Some(old) = grow {
            self.write(old, &vec![0; (len - old) as usize]);
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.sync();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        SimFile::write(self, offset, data);
        Ok(())
    }
}

impl LogFile for SimFile {
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        Ok(self.disk.with(self.name, |f| f.current.clone()))
    }

    fn write_at(&mut self, data: &[u8], offset: u64) -> std::io::Result<()> {
        SimFile::write(self, offset, data);
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        // A real `fdatasync` takes a while, during which the record is in flight: a cut then
        // finds part of its sectors on the disk.
        std::thread::sleep(Duration::from_micros(200));
        SimFile::sync(self);
        Ok(())
    }
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Opens (recovering) the database and its log on `disk`: with the groups replayed and whether
/// a torn record was dropped.
fn open(disk: &Disk, existed: bool) -> (Arc<Database>, Log, u64, bool) {
    let file = |name| SimFile {
        disk: disk.clone(),
        name,
    };
    let db = redb::Builder::new()
        .create_with_backend(file("duro.redb"))
        .expect("redb recovers what survived");
    create_tables(&db).unwrap();
    let recovery = Log::recover(Box::new(file("duro.wal")), existed, &db, true, false)
        .unwrap_or_else(|e| panic!("the log recovers what survived: {e:?}"));
    let torn = recovery.dropped.is_some();
    (Arc::new(db), recovery.log, recovery.replayed_groups, torn)
}

/// The value of a key at a round: the round, padded so that a group of a few writes spans
/// several log sectors (a cut can tear it).
fn value(round: u64) -> Bytes {
    let mut value = round.to_le_bytes().to_vec();
    value.resize(200, 0xA5);
    Bytes::from(value)
}

/// The storage prefix of SQL writer `writer`'s object.
fn sql_object(writer: usize) -> Vec<u8> {
    let mut prefix = vec![0xEE; 40];
    prefix[39] = writer as u8;
    prefix
}

fn key(k: usize) -> Vec<u8> {
    format!("key-{k:03}").into_bytes()
}

/// Runs writers against the committer, cuts the power at a random moment, recovers, and checks
/// every acknowledged write. Returns the groups the recovery replayed, and whether it dropped a
/// torn record.
async fn one_cut(seed: u64) -> (u64, bool) {
    let mut rng = Rng(seed);
    let disk = Disk::default();
    let (db, log, ..) = open(&disk, false);
    let checkpoint_every = Duration::from_millis(1 + rng.next() % 30);
    let metrics = Arc::new(Metrics::new());
    let sink = RedbSink::new(db.clone(), log, checkpoint_every, metrics.clone());
    let (committer, thread) = Committer::start(
        Box::new(sink),
        metrics,
        Arc::new(tokio::sync::Notify::new()),
    )
    .unwrap();
    // 16 writers, each owning 4 keys; each write waits for its acknowledgement.
    let acked: Arc<Mutex<HashMap<usize, u64>>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..16 {
        let (committer, acked) = (committer.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for round in 1u64.. {
                let k = writer * 4 + (round % 4) as usize;
                let op = WriteOp::Put {
                    table: Table::Data,
                    key: key(k),
                    value: value(round),
                };
                if committer.submit(vec![op]).await.wait().await.is_err() {
                    return;
                }
                acked.lock().unwrap().insert(k, round);
            }
        }));
    }
    // 4 more, each an object inserting rows through SQL: its pages are entries like any other.
    let sql_acked: Arc<Mutex<HashMap<usize, u64>>> = Arc::default();
    for writer in 0..4 {
        let (committer, acked, db) = (committer.clone(), sql_acked.clone(), db.clone());
        writers.push(tokio::spawn(async move {
            let mut view = ObjectStorage::new(
                Arc::new(super::Redb(db)),
                sql_object(writer),
                &Limits::default(),
            );
            for round in 1u64.. {
                view.begin_event();
                if round == 1 {
                    view.sql_exec(
                        "CREATE TABLE t (n INTEGER, pad BLOB)",
                        &[],
                        SqlBudget::unbounded(),
                    )
                    .unwrap();
                }
                view.sql_exec(
                    "INSERT INTO t VALUES (?, zeroblob(300))",
                    &[Value::Integer(round as i64)],
                    SqlBudget::unbounded(),
                )
                .unwrap();
                let writes = view.finish_event().expect("the insert wrote pages");
                if committer.submit(writes.ops).await.wait().await.is_err() {
                    return;
                }
                view.mark_durable(writes.seq);
                acked.lock().unwrap().insert(writer, round);
            }
        }));
    }
    drop(db);
    // Cut at a random moment once both kinds of write were acknowledged (a busy machine may
    // take a while for the first).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().is_empty() || sql_acked.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "seed {seed}: nothing was acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(rng.next() % 200)).await;
    // What was acknowledged before the cut must survive it.
    let promised = acked.lock().unwrap().clone();
    let sql_promised = sql_acked.lock().unwrap().clone();
    let survived = disk.cut(&mut rng);
    for writer in writers {
        writer.abort();
    }
    drop(committer);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    assert!(
        !promised.is_empty() && !sql_promised.is_empty(),
        "seed {seed}: nothing was acknowledged"
    );

    let (db, _log, replayed, torn) = open(&survived, true);
    for (writer, round) in sql_promised {
        let mut view = ObjectStorage::new(
            Arc::new(super::Redb(db.clone())),
            sql_object(writer),
            &Limits::default(),
        );
        view.begin_event();
        let mut rows = |query| {
            view.sql_exec(query, &[], SqlBudget::unbounded())
                .unwrap()
                .rows
        };
        assert_eq!(rows("PRAGMA quick_check"), [[Value::Text("ok".into())]]);
        let [Value::Integer(stored)] = rows("SELECT max(n) FROM t")[0][..] else {
            panic!("seed {seed}: SQL object {writer} lost its rows (acknowledged {round})")
        };
        assert!(
            stored as u64 >= round,
            "seed {seed}: SQL object {writer} went back from acknowledged row {round} to {stored}"
        );
    }
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(schema::DATA).unwrap();
    for (k, round) in promised {
        let value = table
            .get(key(k).as_slice())
            .unwrap()
            .unwrap_or_else(|| panic!("seed {seed}: key {k} lost (acknowledged round {round})"));
        let stored = u64::from_le_bytes(value.value()[..8].try_into().unwrap());
        assert!(
            stored >= round,
            "seed {seed}: key {k} went back from acknowledged round {round} to {stored}"
        );
    }
    (replayed, torn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_power_cut() {
    let (mut replayed, mut torn) = (0, 0);
    for seed in 1..=24u64 {
        let (groups, dropped) = one_cut(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).await;
        replayed += groups;
        torn += u32::from(dropped);
    }
    // The cuts landed between checkpoints too: recoveries had to replay the log, and some
    // tore a record (dropped, never refused as damage: a refusal fails `open`).
    assert!(replayed > 0, "no cut ever needed the log");
    assert!(torn > 0, "no cut ever tore a record");
}
