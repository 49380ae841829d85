//! The log's recovery, end to end on real files: replay after a crash, torn tails dropped,
//! damage refused (or accepted), foreign and older logs refused, upgrades from format 1.

use super::ops::decode_ops;
use super::*;
use crate::storage::ops::put;
use crate::storage::schema::Table;
use bytes::Bytes;

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
    crate::storage::embedded::apply::create_tables(&db).unwrap();
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

/// Offset and size in sectors of each record from `RECORDS_START`, in order, until a blank
/// sector.
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    const SECTOR: usize = sectors::SECTOR;
    let mut found = Vec::new();
    let mut at = RECORDS_START as usize;
    while bytes[at..at + SECTOR].iter().any(|b| *b != 0) {
        let len = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
        let size = sectors::record_size(len);
        found.push((at, size / SECTOR));
        at += size;
    }
    found
}

fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    records(bytes).into_iter().map(|(at, _)| at).collect()
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
        WriteOp::DeletePrefix {
            table: Table::Data,
            prefix: vec![1, 2],
        },
        WriteOp::DeletePrefix {
            table: Table::Names,
            prefix: vec![3],
        },
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

/// A group big enough for four sectors.
fn big(key: &str) -> WriteOp {
    put(key, &"x".repeat(1500))
}

/// Appends `a` (one sector), then `b` (four), then crashes; the log's bytes and where `b` is.
fn crash_with_a_big_last_record(dir: &Path) -> (Vec<u8>, usize) {
    {
        let (_db, mut recovery) = open(dir);
        recovery.log.append([put("a", "1")].iter()).unwrap();
        recovery.log.append([big("b")].iter()).unwrap();
    }
    let bytes = std::fs::read(wal(dir)).unwrap();
    let found = records(&bytes);
    assert_eq!(found.iter().map(|r| r.1).collect::<Vec<_>>(), [1, 4]);
    (bytes, found[1].0)
}

#[test]
fn a_torn_last_record_is_dropped_and_said() {
    for missing in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let (mut bytes, b) = crash_with_a_big_last_record(dir.path());
        // One sector of `b` never reached the disk: it still holds what was there (zeros).
        let at = b + missing * sectors::SECTOR;
        bytes[at..at + sectors::SECTOR].fill(0);
        std::fs::write(wal(dir.path()), &bytes).unwrap();
        let found = inspect(
            dir.path(),
            &Database::create(dir.path().join(super::super::DB_FILE)).unwrap(),
        )
        .unwrap();
        assert_eq!((found.groups, found.torn.is_some()), (1, true));
        let (db, recovery) = open(dir.path());
        assert_eq!(recovery.replayed_groups, 1);
        assert_eq!(
            recovery.dropped,
            Some(TornRecord {
                seq: 2,
                offset: b as u64,
                written: 3,
                sectors: 4
            }),
            "sector {missing} missing"
        );
        assert!(get(&db, "a").is_some());
        assert!(get(&db, "b").is_none());
    }
}

#[test]
fn a_flipped_byte_in_the_last_record_is_damage_not_a_torn_tail() {
    for (sector, byte) in [(0, 0), (0, 3), (0, 40), (1, 200), (3, 511)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut bytes, b) = crash_with_a_big_last_record(dir.path());
        bytes[b + sector * sectors::SECTOR + byte] ^= 0x10;
        std::fs::write(wal(dir.path()), &bytes).unwrap();
        let expected = LogDamage::LastRecord {
            seq: 2,
            offset: b as u64,
            sectors: 4,
            garbled: 1,
        };
        assert_eq!(damage(dir.path()), expected, "sector {sector} byte {byte}");
        // `duro check` says the same, with the offset.
        let db = Database::create(dir.path().join(super::super::DB_FILE)).unwrap();
        let said = inspect(dir.path(), &db).err().unwrap();
        assert!(said.contains(&format!("offset {b}")), "{said}");
        drop(db);
        // Refusing changed nothing; accepting replays what is before it.
        assert_eq!(damage(dir.path()), expected);
        let (db, recovery) = try_open(dir.path(), true).unwrap();
        assert_eq!(recovery.replayed_groups, 1);
        assert_eq!(recovery.accepted_damage, Some(expected));
        assert!(get(&db, "a").is_some() && get(&db, "b").is_none());
    }
    // The last record of one sector, flipped: damage too.
    let dir = tempfile::tempdir().unwrap();
    crash_after(dir.path(), &["a", "b"]);
    let mut bytes = std::fs::read(wal(dir.path())).unwrap();
    let last = record_offsets(&bytes)[1];
    bytes[last + 100] ^= 1;
    std::fs::write(wal(dir.path()), &bytes).unwrap();
    assert!(matches!(
        damage(dir.path()),
        LogDamage::LastRecord {
            seq: 2,
            sectors: 1,
            ..
        }
    ));
}

#[test]
fn a_dropped_record_is_never_mixed_with_the_next_one_of_its_number() {
    let dir = tempfile::tempdir().unwrap();
    // A write of which only some sectors reach the disk: the others keep `before`'s bytes.
    let tear = |before: &[u8], lost: [usize; 2]| {
        let mut bytes = std::fs::read(wal(dir.path())).unwrap();
        for i in lost {
            let at = RECORDS_START as usize + i * sectors::SECTOR;
            bytes[at..at + sectors::SECTOR].copy_from_slice(&before[at..at + sectors::SECTOR]);
        }
        std::fs::write(wal(dir.path()), &bytes).unwrap();
    };
    // Record 1, `b`, torn: only its sectors 0 and 2 reached the disk.
    let before = {
        let (_db, mut recovery) = open(dir.path());
        let before = std::fs::read(wal(dir.path())).unwrap();
        recovery.log.append([big("b")].iter()).unwrap();
        before
    };
    tear(&before, [1, 3]);
    let before = {
        let (_db, mut recovery) = open(dir.path());
        assert_eq!(recovery.dropped.as_ref().map(|t| t.seq), Some(1));
        // Record 1 again, the same size, torn the other way: only its sectors 1 and 3 land.
        let before = std::fs::read(wal(dir.path())).unwrap();
        recovery.log.append([big("c")].iter()).unwrap();
        before
    };
    tear(&before, [0, 2]);
    let (db, recovery) = open(dir.path());
    assert_eq!(recovery.replayed_groups, 0);
    assert_eq!(recovery.dropped.as_ref().map(|t| t.written), Some(2));
    assert!(get(&db, "b").is_none() && get(&db, "c").is_none());
}

#[test]
fn a_log_of_format_1_is_replayed_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    crash_after(dir.path(), &[]);
    let mut bytes = std::fs::read(wal(dir.path())).unwrap();
    let slot = reading::newest_header(&bytes).unwrap();
    // What a duro of format 1 leaves after a crash: its header and two records.
    bytes.fill(0);
    let mut header = header_slot(0, &slot.db_id, slot.checkpoint);
    header[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32fast::hash(&header[..40]);
    header[40..44].copy_from_slice(&crc.to_le_bytes());
    bytes[..SLOT_LEN].copy_from_slice(&header);
    let mut at = RECORDS_START as usize;
    for (i, key) in ["a", "b"].iter().enumerate() {
        let mut payload = Vec::new();
        encode_op(&put(key, "1"), &mut payload);
        let record = legacy::encode(slot.checkpoint + 1 + i as u64, &payload);
        bytes[at..at + record.len()].copy_from_slice(&record);
        at += record.len();
    }
    std::fs::write(wal(dir.path()), &bytes).unwrap();
    let (db, recovery) = open(dir.path());
    assert_eq!(recovery.replayed_groups, 2);
    assert!(get(&db, "a").is_some() && get(&db, "b").is_some());
    // Rewritten in today's format: no old record is left.
    let bytes = std::fs::read(wal(dir.path())).unwrap();
    assert_eq!(reading::newest_header(&bytes).unwrap().version, VERSION);
    assert!(bytes[RECORDS_START as usize..].iter().all(|b| *b == 0));
}

#[test]
fn damage_in_the_middle_is_refused_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    crash_after(dir.path(), &["a", "b", "c", "d"]);
    let mut bytes = std::fs::read(wal(dir.path())).unwrap();
    let offsets = record_offsets(&bytes);
    bytes[offsets[1] + 30] ^= 0x40;
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
