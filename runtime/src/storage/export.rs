//! One object as JSON lines: what `duro export` writes (read from one snapshot of storage) and
//! `duro import` reads back into the same or another object. A header line, then one line per
//! entry in key order:
//!
//! ```text
//! {"duro_export":1,"class":"Counter","id":"<64 hex>","name":"alpha","alarm_ms":null}
//! {"key":"count","value":3}                  a value that is JSON, as its exact text
//! {"key":"raw","hex":"00ff"}                 any other value
//! {"internal":"ff7000000000","hex":"..."}    an entry of its SQL database (pages, size)
//! {"duro_end":{"entries":2}}                 the last line: an export cut short lacks it
//! ```
//!
//! Values come back byte for byte. The object's name is in the header only: an import gives the
//! target its own name. Format 1 (before the end line) is still read.

use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::backend::{BackendError, Reader};
use super::schema::{self, Table};
use crate::ids::ObjectId;

/// The format's version, the header's `duro_export`: 2 ends with the end line.
pub const FORMAT: u32 = 2;
/// The versions this duro reads.
const READS: std::ops::RangeInclusive<u32> = 1..=2;

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub duro_export: u32,
    pub class: String,
    pub id: String,
    pub name: Option<String>,
    pub alarm_ms: Option<i64>,
}

/// An entry line, as written and read.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    internal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
}

/// One entry to import: its key within the object (a user key's bytes, or an internal key,
/// which starts with [`schema::INTERNAL`]) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Bytes,
}

/// What was written: entries and bytes of JSON lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub entries: u64,
    pub bytes: u64,
}

/// Writes the object `id` of the class `incarnation` as JSON lines (the header's format, alarm
/// and name read here), handing `out` chunks of
/// about 64 KiB; stops early (and says so with `Ok(None)`) when `out` returns false (the reader
/// went away).
pub fn write(
    db: &dyn Reader,
    incarnation: u64,
    id: &ObjectId,
    mut header: Header,
    mut out: impl FnMut(Vec<u8>) -> bool,
) -> Result<Option<Written>, BackendError> {
    let object = schema::object_prefix(incarnation, id);
    header.duro_export = FORMAT;
    header.alarm_ms = db.alarm(&object)?;
    header.name = super::inspect::stored_name(db, incarnation, id)?;
    let mut chunk = serde_json::to_vec(&header).expect("a header serializes");
    chunk.push(b'\n');
    let mut written = Written::default();
    let end = schema::prefix_end(&object).expect("an object prefix is not all 0xFF");
    let range = (Bound::Included(object.clone()), Bound::Excluded(end));
    for entry in db.range(Table::Data, range, false)? {
        let (key, value) = entry?;
        let key = &key[object.len()..];
        if key == schema::NAME_KEY {
            continue;
        }
        if key == schema::IMPORT_KEY {
            // An import began after the caller looked: half an import is no export.
            return Err(BackendError::new(
                "an import into the object has not finished; export it once it has",
            ));
        }
        serde_json::to_writer(&mut chunk, &line(key, &value)).expect("a line serializes");
        chunk.push(b'\n');
        written.entries += 1;
        if chunk.len() >= 64 * 1024 {
            written.bytes += chunk.len() as u64;
            if !out(std::mem::take(&mut chunk)) {
                return Ok(None);
            }
        }
    }
    let end = EndLine {
        duro_end: End {
            entries: written.entries,
        },
    };
    serde_json::to_writer(&mut chunk, &end).expect("the end line serializes");
    chunk.push(b'\n');
    written.bytes += chunk.len() as u64;
    Ok(out(chunk).then_some(written))
}

/// The last line: how many entries came before it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndLine {
    duro_end: End,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    entries: u64,
}

fn line(key: &[u8], value: &[u8]) -> EntryLine {
    if key.first() == Some(&schema::INTERNAL) {
        return EntryLine {
            key: None,
            internal: Some(hex::encode(key)),
            value: None,
            hex: Some(hex::encode(value)),
        };
    }
    let key = Some(String::from_utf8_lossy(key).into_owned());
    // As JSON only when its text is exactly the stored bytes (no surrounding whitespace).
    match serde_json::from_slice::<Box<RawValue>>(value) {
        Ok(raw) if raw.get().as_bytes() == value => EntryLine {
            key,
            internal: None,
            value: Some(raw),
            hex: None,
        },
        _ => EntryLine {
            key,
            internal: None,
            value: None,
            hex: Some(hex::encode(value)),
        },
    }
}

/// A line read back: the header, an entry, or the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Header(Header),
    Entry(Entry),
    /// The end line, with the count of entries it says came before it.
    End(u64),
}

/// Reads one line (without its newline); the error says what is wrong with it.
pub fn read_line(line: &[u8]) -> Result<Line, String> {
    if line.starts_with(br#"{"duro_export""#) {
        let header: Header =
            serde_json::from_slice(line).map_err(|e| format!("a bad header: {e}"))?;
        if !READS.contains(&header.duro_export) {
            return Err(format!(
                "export format {} (this duro reads {} to {})",
                header.duro_export,
                READS.start(),
                READS.end()
            ));
        }
        return Ok(Line::Header(header));
    }
    if line.starts_with(br#"{"duro_end""#) {
        let end: EndLine =
            serde_json::from_slice(line).map_err(|e| format!("a bad end line: {e}"))?;
        return Ok(Line::End(end.duro_end.entries));
    }
    let entry: EntryLine = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let unhex = |h: &str| hex::decode(h).map_err(|e| format!("bad hex: {e}"));
    let key = match (entry.key, entry.internal) {
        (Some(key), None) => key.into_bytes(),
        (None, Some(internal)) => {
            let key = unhex(&internal)?;
            if key.first() != Some(&schema::INTERNAL) || key == schema::NAME_KEY {
                return Err("not an internal key of an object's SQL database".into());
            }
            key
        }
        _ => return Err(r#"a line needs one of "key" and "internal""#.into()),
    };
    let value = match (entry.value, entry.hex) {
        (Some(raw), None) => Bytes::copy_from_slice(raw.get().as_bytes()),
        (None, Some(h)) => unhex(&h)?.into(),
        _ => return Err(r#"a line needs one of "value" and "hex""#.into()),
    };
    Ok(Line::Entry(Entry { key, value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_byte_for_byte() {
        for (key, value) in [
            (b"count".as_slice(), b"3".as_slice()),
            (b"obj", br#"{"b":1,"a":[true,null]}"#),
            (b"spaced", b" 3"),
            (b"raw", b"\x00\xff"),
            (b"text", b"plain"),
            (&[schema::INTERNAL, b'p', 0, 0, 0, 1], b"\x01\x02"),
        ] {
            let text = serde_json::to_vec(&line(key, value)).unwrap();
            let expected = Entry {
                key: key.to_vec(),
                value: Bytes::copy_from_slice(value),
            };
            assert_eq!(read_line(&text), Ok(Line::Entry(expected)));
        }
        assert!(read_line(br#"{"key":"a"}"#).is_err());
        assert!(read_line(br#"{"key":"a","value":1,"hex":"00"}"#).is_err());
        assert!(
            read_line(br#"{"internal":"ff6e","hex":"00"}"#).is_err(),
            "the name"
        );
        assert!(read_line(br#"{"internal":"00","hex":"00"}"#).is_err());
        assert!(
            read_line(br#"{"duro_export":9,"class":"A","id":"x","name":null,"alarm_ms":null}"#)
                .is_err()
        );
    }
}
