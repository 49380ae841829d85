//! The record format of earlier duros (log format 1, and the headerless log before it), read so
//! that an upgrade after an unclean stop replays what they acknowledged. After such a replay
//! the log is zeroed and continues in today's format (`sectors.rs`).
//!
//! Record: `[payload len u32][crc32 of seq + payload][seq u64][payload]`. These records cannot
//! tell a torn tail from damage: replay takes them while the checksum holds and sequence
//! numbers run on.

const RECORD_HEADER_LEN: usize = 16;

/// The records of `bytes` from `start` whose sequence numbers run on from `first_seq`.
pub fn scan(bytes: &[u8], start: usize, first_seq: u64) -> Vec<(u64, Vec<u8>)> {
    let mut records = Vec::new();
    let mut offset = start;
    let mut expected = first_seq;
    while let Some(payload) = record_at(bytes, offset, expected) {
        records.push((expected, payload.to_vec()));
        expected += 1;
        offset += RECORD_HEADER_LEN + payload.len();
    }
    records
}

fn record_at(bytes: &[u8], offset: usize, wanted: u64) -> Option<&[u8]> {
    let header = bytes.get(offset..offset.checked_add(RECORD_HEADER_LEN)?)?;
    if u64::from_le_bytes(header[8..16].try_into().expect("8 bytes")) != wanted {
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

/// A record in this format, for tests of the upgrade.
#[cfg(test)]
pub fn encode(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&[0; 4]);
    record.extend_from_slice(&seq.to_le_bytes());
    record.extend_from_slice(payload);
    let crc = crc32fast::hash(&record[8..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    record
}
