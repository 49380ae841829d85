//! The log's record format (version 2): a record is a run of 512-byte sectors, each carrying its
//! own checksum, so that what a crash leaves can be told from damage.
//!
//! Sector: `[crc32 of the rest][seq u64][index u32][len u32][payload 492]`, where `len` is the
//! length of the record's payload (the group's ops, see `ops.rs`), cut into the sectors'
//! payloads in order, the last one zero-padded. All integers little-endian.
//!
//! The assumption that makes the distinction: **a sector write is atomic** — after a power cut
//! a sector holds its old bytes or its new ones, never a mix (what disks promise for their
//! logical block: NVMe's atomic write unit is at least one block; a disk sector is written whole
//! under its own ECC or reads as an error). A record is appended only after the one before it
//! is synced, and acknowledged only once it is synced itself; so after a crash each sector of
//! the record being written holds either its new bytes (its checksum holds) or what was there
//! before (zeros, or a sector of an earlier round whose checksum holds with an older sequence
//! number). A record with a sector still old is a **torn** write: never acknowledged, dropped.
//! A sector whose checksum fails was changed after it was written: **damage**, which may have
//! hit acknowledged writes. Sequence numbers never repeat within a run, and a start after an
//! unclean stop zeroes the log once it has been replayed, so sectors of a dropped record can
//! never be mistaken for sectors of a later one with the same number.
//!
//! The cost: a record takes whole sectors (a one-event group of ~100 bytes writes 512), so the
//! log fills and checkpoints sooner; the write synced per group stays within the one page the
//! disk writes anyway.

/// The unit of a record.
pub const SECTOR: usize = 512;
const HEADER: usize = 20;
/// Payload bytes per sector.
const PAYLOAD: usize = SECTOR - HEADER;

/// How many bytes the record of a payload of `len` bytes takes.
pub fn record_size(len: usize) -> usize {
    sectors_for(len) * SECTOR
}

fn sectors_for(len: usize) -> usize {
    len.div_ceil(PAYLOAD).max(1)
}

/// Frames `payload` as record `seq` into `out` (cleared first). `payload` must fit a u32.
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("the caller checked the payload's size");
    out.clear();
    out.resize(record_size(payload.len()), 0);
    let chunks = payload
        .chunks(PAYLOAD)
        .chain(payload.is_empty().then_some(&[][..]));
    for (index, (sector, chunk)) in out.chunks_exact_mut(SECTOR).zip(chunks).enumerate() {
        sector[4..12].copy_from_slice(&seq.to_le_bytes());
        sector[12..16].copy_from_slice(&(index as u32).to_le_bytes());
        sector[16..20].copy_from_slice(&len.to_le_bytes());
        sector[HEADER..HEADER + chunk.len()].copy_from_slice(chunk);
        let crc = crc32fast::hash(&sector[4..]);
        sector[..4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// One sector as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sector<'a> {
    /// All zeros, or beyond the end of the file: never written since the log was zeroed.
    Blank,
    /// Its checksum holds.
    Written {
        seq: u64,
        index: u32,
        len: u32,
        payload: &'a [u8],
    },
    /// Not blank and its checksum fails.
    Garbled,
}

fn sector(bytes: &[u8], at: usize) -> Sector<'_> {
    let Some(sector) = at.checked_add(SECTOR).and_then(|end| bytes.get(at..end)) else {
        return Sector::Blank;
    };
    let crc = u32::from_le_bytes(sector[..4].try_into().expect("4 bytes"));
    if crc32fast::hash(&sector[4..]) == crc {
        Sector::Written {
            seq: u64::from_le_bytes(sector[4..12].try_into().expect("8 bytes")),
            index: u32::from_le_bytes(sector[12..16].try_into().expect("4 bytes")),
            len: u32::from_le_bytes(sector[16..20].try_into().expect("4 bytes")),
            payload: &sector[HEADER..],
        }
    } else if sector.iter().all(|b| *b == 0) {
        Sector::Blank
    } else {
        Sector::Garbled
    }
}

/// What the place where record `seq` would start holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// The whole record: its payload and its size in sectors.
    Record { payload: Vec<u8>, sectors: usize },
    /// Nothing of it: the log ends here.
    End,
    /// Part of it: some sectors still hold what was there before. A crash during its write; it
    /// was never acknowledged.
    Torn { written: usize, sectors: usize },
    /// No sector of it is missing, but `garbled` of them fail their checksum.
    Damaged { sectors: usize, garbled: usize },
}

/// Reads record `seq` at offset `at` of `bytes`.
pub fn record_at(bytes: &[u8], at: usize, seq: u64) -> At {
    let ours = |s: Sector<'_>, i: usize| match s {
        Sector::Written {
            seq: s, index, len, ..
        } if s == seq && index as usize == i => Some(len),
        _ => None,
    };
    let len = match sector(bytes, at) {
        first @ Sector::Written { .. } => match ours(first, 0) {
            Some(len) => len,
            None => return second_sector(bytes, at, seq),
        },
        Sector::Blank => return second_sector(bytes, at, seq),
        Sector::Garbled => {
            // The record's length is in any of its sectors: the first that checks after a
            // run of garbled ones. None: the garbled run is the record.
            let mut k = 1;
            loop {
                match sector(bytes, at + k * SECTOR) {
                    Sector::Garbled => k += 1,
                    later => match ours(later, k) {
                        Some(len) => break len,
                        None => {
                            return At::Damaged {
                                sectors: k,
                                garbled: k,
                            };
                        }
                    },
                }
            }
        }
    };
    let sectors = sectors_for(len as usize);
    let (mut written, mut garbled) = (0, 0);
    let mut payload = Vec::new();
    // A length past the end of the file leaves its missing sectors blank: torn.
    let available = sectors.min(bytes.len().saturating_sub(at) / SECTOR);
    for i in 0..available {
        let s = sector(bytes, at + i * SECTOR);
        match (s, ours(s, i)) {
            (Sector::Written { payload: part, .. }, Some(l)) if l == len => {
                written += 1;
                payload.extend_from_slice(part);
            }
            (Sector::Garbled, _) => garbled += 1,
            _ => {}
        }
    }
    if written == sectors {
        payload.truncate(len as usize);
        At::Record { payload, sectors }
    } else if written + garbled < sectors {
        At::Torn { written, sectors }
    } else {
        At::Damaged { sectors, garbled }
    }
}

/// The first sector of record `seq` is not there: a torn write if its second one is (sectors
/// reach the disk in any order), else the end of the log.
fn second_sector(bytes: &[u8], at: usize, seq: u64) -> At {
    match sector(bytes, at + SECTOR) {
        Sector::Written {
            seq: s,
            index: 1,
            len,
            ..
        } if s == seq => {
            let sectors = sectors_for(len as usize);
            let written = (1..sectors)
                .filter(|i| {
                    matches!(sector(bytes, at + i * SECTOR),
                        Sector::Written { seq: s, index, len: l, .. }
                            if s == seq && index as usize == *i && l == len)
                })
                .count();
            At::Torn { written, sectors }
        }
        _ => At::End,
    }
}

/// What [`scan`] read.
pub struct Scanned {
    /// The whole records whose sequence numbers run on from the first wanted, in order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Where the first record that is not whole starts.
    pub end: usize,
    /// What is there: [`At::End`], [`At::Torn`] or [`At::Damaged`].
    pub tail: At,
}

/// The records of `bytes` from `start` whose sequence numbers run on from `first_seq`.
pub fn scan(bytes: &[u8], start: usize, first_seq: u64) -> Scanned {
    let mut records = Vec::new();
    let mut at = start;
    let mut seq = first_seq;
    loop {
        match record_at(bytes, at, seq) {
            At::Record { payload, sectors } => {
                records.push((seq, payload));
                seq += 1;
                at += sectors * SECTOR;
            }
            tail => {
                return Scanned {
                    records,
                    end: at,
                    tail,
                };
            }
        }
    }
}

/// How many whole records with a sequence number after `last` start at or after `from`. Stale
/// records of earlier rounds have lower numbers, so any such record is one the replay could
/// not reach: the log is damaged before it.
pub fn later_records(bytes: &[u8], from: usize, last: u64) -> u64 {
    /// Sequence numbers further ahead are not taken for records of this round.
    const WINDOW: u64 = 1 << 32;
    let mut found = 0;
    let mut at = from;
    while at + SECTOR <= bytes.len() {
        let step = match sector(bytes, at) {
            Sector::Written { seq, index: 0, .. } if seq > last && seq - last <= WINDOW => {
                match record_at(bytes, at, seq) {
                    At::Record { sectors, .. } => {
                        found += 1;
                        sectors
                    }
                    _ => 1,
                }
            }
            _ => 1,
        };
        at += step * SECTOR;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut record = Vec::new();
        for (seq, payload) in records {
            encode(*seq, payload, &mut record);
            bytes.extend_from_slice(&record);
        }
        bytes.resize(bytes.len() + 8 * SECTOR, 0);
        bytes
    }

    #[test]
    fn records_of_every_size_read_back() {
        let long: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        for len in [0, 1, PAYLOAD - 1, PAYLOAD, PAYLOAD + 1, 2000] {
            let bytes = log_of(&[(7, &long[..len]), (8, b"next")]);
            let scanned = scan(&bytes, 0, 7);
            assert_eq!(scanned.records.len(), 2, "len {len}");
            assert_eq!(scanned.records[0].1, &long[..len]);
            assert_eq!(scanned.records[1].1, b"next");
            assert_eq!(scanned.tail, At::End);
            assert_eq!(scanned.end, record_size(len) + SECTOR);
        }
    }

    #[test]
    fn a_missing_sector_is_torn_and_a_garbled_one_is_damage() {
        let payload = vec![5u8; 3 * PAYLOAD];
        let whole = log_of(&[(1, &payload)]);
        let torn_at = |i: usize| {
            let mut bytes = whole.clone();
            bytes[i * SECTOR..(i + 1) * SECTOR].fill(0);
            record_at(&bytes, 0, 1)
        };
        for i in 0..3 {
            assert_eq!(
                torn_at(i),
                At::Torn {
                    written: 2,
                    sectors: 3
                },
                "sector {i} missing"
            );
        }
        for i in 0..3 {
            let mut bytes = whole.clone();
            bytes[i * SECTOR + 100] ^= 1;
            assert_eq!(
                record_at(&bytes, 0, 1),
                At::Damaged {
                    sectors: 3,
                    garbled: 1
                },
                "sector {i} flipped"
            );
        }
        // A flipped sector beside a missing one: the record never was whole, so never acknowledged.
        let mut bytes = whole.clone();
        bytes[10] ^= 1;
        bytes[2 * SECTOR..3 * SECTOR].fill(0);
        assert!(matches!(record_at(&bytes, 0, 1), At::Torn { .. }));
        // One sector, flipped: damage.
        let mut bytes = log_of(&[(1, b"x")]);
        bytes[30] ^= 1;
        assert_eq!(
            record_at(&bytes, 0, 1),
            At::Damaged {
                sectors: 1,
                garbled: 1
            }
        );
    }

    #[test]
    fn sectors_of_another_record_are_old_bytes() {
        // An earlier round's record where record 9 would go: the log ends there.
        let bytes = log_of(&[(3, b"old")]);
        assert_eq!(record_at(&bytes, 0, 9), At::End);
        assert_eq!(later_records(&bytes, 0, 8), 0);
        assert_eq!(later_records(&bytes, 0, 2), 1);
    }
}
