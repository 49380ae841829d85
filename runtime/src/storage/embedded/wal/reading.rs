//! What a start finds in the log, without changing anything: the header's checks, the records
//! that follow the database's checkpoint, and what comes after the last of them — the end, a
//! torn record (dropped) or damage (refused). `duro check` asks the same through [`inspect`].

use std::path::Path;

use redb::Database;

use super::ops::{decode_ops, encode_op};
use super::{
    DbState, LogDamage, MAGIC, RECORDS_START, SLOT_LEN, SLOTS, TornRecord, VERSION, WAL_CAPACITY,
    WAL_FILE, WriteOp, header_slot, legacy, read_state, sectors,
};

/// A header slot as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) version: u32,
    pub(super) db_id: [u8; 16],
    pub(super) checkpoint: u64,
}

/// The valid header slot that continues the later checkpoint.
pub(super) fn newest_header(bytes: &[u8]) -> Option<Header> {
    SLOTS
        .iter()
        .filter_map(|at| parse_slot(bytes.get(*at as usize..)?))
        .max_by_key(|h| h.checkpoint)
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

/// What a start finds in the log: the groups it replays, what it drops, and the damage that
/// refuses it unless accepted (the groups are then what could be read before the damage).
pub(super) struct Reading {
    /// The replayed groups' ops, in order.
    pub(super) ops: Vec<WriteOp>,
    pub(super) groups: u64,
    /// The sequence number of the last group the database holds after the replay.
    pub(super) last: u64,
    pub(super) torn: Option<TornRecord>,
    pub(super) damage: Option<LogDamage>,
}

impl Reading {
    pub(super) fn nothing(checkpoint: u64) -> Self {
        Reading {
            ops: Vec::new(),
            groups: 0,
            last: checkpoint,
            torn: None,
            damage: None,
        }
    }

    /// Takes `records` (numbered on from the checkpoint) while they decode.
    fn decode(&mut self, records: Vec<(u64, Vec<u8>)>) {
        for (seq, payload) in records {
            if let Err(what) = decode_ops(&payload, &mut self.ops) {
                self.damage
                    .get_or_insert(LogDamage::Undecodable { seq, what });
                return;
            }
            self.groups += 1;
            self.last = seq;
        }
    }
}

/// Reads the log's `bytes` (`None`: the file is missing) for a database at `checkpoint`.
pub(super) fn read(
    bytes: Option<&[u8]>,
    state: &DbState,
    db_id: &[u8; 16],
    checkpoint: u64,
) -> Reading {
    let mut reading = Reading::nothing(checkpoint);
    let Some(bytes) = bytes else {
        if !state.clean {
            reading.damage = Some(LogDamage::Missing);
        }
        return reading;
    };
    if (bytes.len() as u64) < WAL_CAPACITY {
        // Cut: refused, but what is there is what an accepted start replays.
        reading.damage = Some(LogDamage::Truncated {
            len: bytes.len() as u64,
        });
    }
    if state.db_id.is_none() {
        // Written by a duro without log headers: records start at offset 0.
        reading.decode(legacy::scan(bytes, 0, checkpoint + 1));
        return reading;
    }
    let header = match check_header(bytes, db_id, checkpoint) {
        Ok(header) => header,
        Err(damage) => {
            reading.damage = Some(damage);
            return reading;
        }
    };
    if header.checkpoint < checkpoint {
        // No record of the round after the database's checkpoint was synced (its header goes
        // down with its first record): everything in the log is covered already.
        return reading;
    }
    if header.version == 1 {
        reading.decode(legacy::scan(bytes, RECORDS_START as usize, checkpoint + 1));
        return reading;
    }
    let scanned = sectors::scan(bytes, RECORDS_START as usize, checkpoint + 1);
    let next = checkpoint + 1 + scanned.records.len() as u64;
    let offset = scanned.end as u64;
    reading.decode(scanned.records);
    let after = sectors::later_records(bytes, scanned.end + sectors::SECTOR, next - 1);
    let found = if after > 0 {
        Some(LogDamage::Middle {
            seq: next,
            offset,
            after,
        })
    } else {
        match scanned.tail {
            sectors::At::Torn { written, sectors } => {
                reading.torn = Some(TornRecord {
                    seq: next,
                    offset,
                    written,
                    sectors,
                });
                None
            }
            sectors::At::Damaged { sectors, garbled } => Some(LogDamage::LastRecord {
                seq: next,
                offset,
                sectors,
                garbled,
            }),
            sectors::At::End | sectors::At::Record { .. } => None,
        }
    };
    if let Some(damage) = found {
        reading.damage.get_or_insert(damage);
    }
    reading
}

/// The newer of the two header slots, if it is one of this database's log and continues a
/// checkpoint the database has.
fn check_header(bytes: &[u8], db_id: &[u8; 16], checkpoint: u64) -> Result<Header, LogDamage> {
    let header = newest_header(bytes).ok_or(LogDamage::NoHeader)?;
    if header.version != VERSION && header.version != 1 {
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
    Ok(header)
}

/// What a start would find in the log of `data_dir` beside `db`, without replaying or changing
/// anything.
pub struct Inspection {
    /// The groups it would replay.
    pub groups: u64,
    /// The incomplete record it would drop.
    pub torn: Option<TornRecord>,
}

/// Inspects the log of `data_dir` beside `db`: what a start would do, or the damage that would
/// refuse it.
pub fn inspect(data_dir: &Path, db: &Database) -> Result<Inspection, String> {
    let state = read_state(db).map_err(|e| format!("cannot read its checkpoint: {e}"))?;
    let Some(checkpoint) = state.checkpoint else {
        return Ok(Inspection {
            groups: 0,
            torn: None,
        });
    };
    let bytes = std::fs::read(data_dir.join(WAL_FILE)).ok();
    let db_id = state.db_id.unwrap_or_default();
    let reading = read(bytes.as_deref(), &state, &db_id, checkpoint);
    match reading.damage {
        Some(damage) => Err(damage.to_string()),
        None => Ok(Inspection {
            groups: reading.groups,
            torn: reading.torn,
        }),
    }
}

/// The log fuzz target's body: `data` as the records of a round after a valid header. Reading
/// never panics, and what decodes encodes back to the same bytes.
pub fn fuzz_log(data: &[u8]) {
    let db_id = [9u8; 16];
    let mut bytes = vec![0u8; RECORDS_START as usize];
    bytes[..SLOT_LEN].copy_from_slice(&header_slot(0, &db_id, 0));
    bytes.extend_from_slice(data);
    let state = DbState {
        checkpoint: Some(0),
        db_id: Some(db_id),
        clean: false,
    };
    read(Some(&bytes), &state, &db_id, 0);
    for (_, payload) in sectors::scan(&bytes, RECORDS_START as usize, 1).records {
        let mut ops = Vec::new();
        if decode_ops(&payload, &mut ops).is_ok() {
            let mut again = Vec::new();
            for op in &ops {
                encode_op(op, &mut again);
            }
            assert_eq!(again, payload, "decoded ops encode back to their bytes");
        }
    }
}
