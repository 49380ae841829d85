//! What an import may put into an object, checked whole before anything is written. The body
//! (an export, `storage::export`) is first spooled to a file; [`check`] reads it line by line —
//! one header first, each entry within the limits a guest's own writes have, internal entries of
//! the known kinds only (the SQL database's pages and its size), the end line with the right
//! count — and assembles the SQL pages into a scratch file that must pass SQLite's
//! `quick_check`. Only then does [`Parts`] hand the entries out, a part (an event of the object)
//! at a time, cut by bytes and by count so that no commit is large; the SQL size entry comes in
//! the last part, so an import cut short by a crash never leaves a database that claims pages it
//! does not have.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::export::{Entry, Header, Line, read_line};
use super::schema::{INTERNAL, NAME_KEY};
use super::sql::pages::{CHUNK, SIZE_KEY, chunk_index};

/// The longest line an import reads (a value at the value limit, hex-encoded, and its key).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// The largest SQL database an import takes: Cloudflare's 10 GB per object.
const MAX_SQL_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// What an import's entries may be, and how they are cut into parts.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Entry bytes (keys and values) in one part at most.
    pub part_bytes: usize,
    /// Entries in one part at most.
    pub part_entries: usize,
}

/// A checked import: its header and how many entries it holds.
#[derive(Debug, Clone)]
pub struct Checked {
    pub header: Header,
    pub entries: u64,
}

/// What kind of entry a key is.
enum Kind {
    User,
    SqlPage(u64),
    SqlSize,
}

fn kind(key: &[u8]) -> Result<Kind, String> {
    if key.first() != Some(&INTERNAL) {
        return Ok(Kind::User);
    }
    if key == SIZE_KEY {
        return Ok(Kind::SqlSize);
    }
    if let Some(index) = chunk_index(key) {
        return Ok(Kind::SqlPage(index));
    }
    let shown = hex::encode(&key[..key.len().min(16)]);
    if key == NAME_KEY {
        return Err("the object's name is not imported (the target keeps its own)".into());
    }
    Err(format!(
        "unknown internal entry {shown}{} (an export holds only its SQL database's pages, \
         ff70 and a 4-byte index, and its size, ff73)",
        if key.len() > 16 { "…" } else { "" }
    ))
}

/// The spooled export's lines, numbered, blank ones skipped.
fn lines(
    spool: &Path,
) -> Result<impl Iterator<Item = (u64, Result<Line, String>)> + Send + use<>, String> {
    let file = File::open(spool).map_err(|e| format!("reading the import: {e}"))?;
    let mut reader = BufReader::new(file);
    let mut number = 0u64;
    let mut buf = Vec::new();
    Ok(std::iter::from_fn(move || {
        loop {
            buf.clear();
            number += 1;
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some((number, Err(format!("reading the import: {e}")))),
            }
            let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if !text.iter().all(u8::is_ascii_whitespace) {
                return Some((number, read_line(text)));
            }
        }
    }))
}

/// Checks the export spooled at `spool` whole, assembling its SQL pages in `scratch`; the error
/// says which line is wrong, and how.
pub fn check(spool: &Path, scratch: &Path, limits: &ImportLimits) -> Result<Checked, String> {
    let mut header: Option<Header> = None;
    let mut ended = false;
    let mut entries = 0u64;
    let mut sql_size: Option<u64> = None;
    let mut top_page: Option<u64> = None;
    let mut pages: Option<File> = None;
    for (number, line) in lines(spool)? {
        let at = |e: String| format!("line {number}: {e}");
        let line = line.map_err(at)?;
        match (line, &header) {
            (Line::Header(h), None) => header = Some(h),
            (Line::Header(_), Some(_)) => return Err(at("a second header".into())),
            (_, None) => return Err(at("not a duro export: the header line comes first".into())),
            (_, Some(_)) if ended => return Err(at("a line after the end line".into())),
            (Line::End(count), Some(_)) => {
                if count != entries {
                    return Err(at(format!(
                        "the end line counts {count} entries; the export holds {entries}"
                    )));
                }
                ended = true;
            }
            (Line::Entry(entry), Some(_)) => {
                match kind(&entry.key).map_err(at)? {
                    Kind::User => {
                        if entry.key.is_empty() || entry.key.len() > limits.max_key_bytes {
                            return Err(at(format!(
                                "a key of {} bytes (1 to {} allowed)",
                                entry.key.len(),
                                limits.max_key_bytes
                            )));
                        }
                        if entry.value.len() > limits.max_value_bytes {
                            return Err(at(format!(
                                "a value of {} bytes; the limit is {}",
                                entry.value.len(),
                                limits.max_value_bytes
                            )));
                        }
                    }
                    Kind::SqlPage(index) => {
                        if entry.value.len() != CHUNK {
                            return Err(at(format!(
                                "an SQL page of {} bytes (they are {CHUNK})",
                                entry.value.len()
                            )));
                        }
                        let file = match &mut pages {
                            Some(file) => file,
                            None => pages.insert(
                                File::create(scratch).map_err(|e| format!("scratch file: {e}"))?,
                            ),
                        };
                        file.write_all_at(&entry.value, index * CHUNK as u64)
                            .map_err(|e| format!("scratch file: {e}"))?;
                        top_page = top_page.max(Some(index));
                    }
                    Kind::SqlSize => {
                        let size = <[u8; 8]>::try_from(&entry.value[..])
                            .map(u64::from_le_bytes)
                            .map_err(|_| at("the SQL size entry is not 8 bytes".into()))?;
                        if size == 0 || size > MAX_SQL_BYTES {
                            return Err(at(format!(
                                "an SQL database of {size} bytes (1 to {MAX_SQL_BYTES} allowed)"
                            )));
                        }
                        sql_size = Some(size);
                    }
                }
                entries += 1;
            }
        }
    }
    let Some(header) = header else {
        return Err("not a duro export: no header line".into());
    };
    if header.duro_export >= 2 && !ended {
        return Err("the export ends before its end line: it was cut off".into());
    }
    match (sql_size, top_page) {
        (None, None) => {}
        (None, Some(_)) => return Err("SQL pages without the database's size entry".into()),
        (Some(size), top) => {
            if top.is_some_and(|top| top * CHUNK as u64 >= size) {
                return Err("an SQL page past the database's size".into());
            }
            let file = match pages {
                Some(file) => file,
                None => File::create(scratch).map_err(|e| format!("scratch file: {e}"))?,
            };
            file.set_len(size)
                .map_err(|e| format!("scratch file: {e}"))?;
            drop(file);
            super::sql::snapshot::check_file(scratch)
                .map_err(|e| format!("the SQL database: {e}"))?;
        }
    }
    Ok(Checked { header, entries })
}

/// The entries of a checked export, in parts: each at most `part_bytes` and `part_entries`,
/// the SQL size entry held back for the last.
pub struct Parts {
    lines: Box<dyn Iterator<Item = (u64, Result<Line, String>)> + Send>,
    limits: ImportLimits,
    /// The next part's first entry, read past the end of the part before.
    next: Option<Entry>,
    size: Option<Entry>,
    done: bool,
}

impl Parts {
    pub fn new(spool: &Path, limits: ImportLimits) -> Result<Self, String> {
        Ok(Self {
            lines: Box::new(lines(spool)?),
            limits,
            next: None,
            size: None,
            done: false,
        })
    }

    /// The next entry (the SQL size entry kept aside); `None` at the end.
    fn entry(&mut self) -> Result<Option<Entry>, String> {
        if let Some(entry) = self.next.take() {
            return Ok(Some(entry));
        }
        for (_, line) in self.lines.by_ref() {
            match line? {
                Line::Entry(entry) if entry.key == SIZE_KEY => self.size = Some(entry),
                Line::Entry(entry) => return Ok(Some(entry)),
                Line::Header(_) | Line::End(_) => {}
            }
        }
        Ok(None)
    }

    /// The next part, and whether it is the last; `None` once all were given.
    pub fn next_part(&mut self) -> Result<Option<(Vec<Entry>, bool)>, String> {
        if self.done {
            return Ok(None);
        }
        let (mut part, mut bytes) = (Vec::new(), 0);
        while let Some(entry) = self.entry()? {
            let size = entry.key.len() + entry.value.len();
            if !part.is_empty()
                && (bytes + size > self.limits.part_bytes || part.len() == self.limits.part_entries)
            {
                self.next = Some(entry);
                return Ok(Some((part, false)));
            }
            bytes += size;
            part.push(entry);
        }
        self.done = true;
        part.extend(self.size.take());
        Ok(Some((part, true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ImportLimits {
        ImportLimits {
            max_key_bytes: 2048,
            max_value_bytes: 128 * 1024,
            part_bytes: 64,
            part_entries: 3,
        }
    }

    fn checked(lines: &[&str]) -> Result<Checked, String> {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::write(&spool, lines.join("\n")).unwrap();
        check(&spool, &dir.path().join("scratch"), &limits())
    }

    const HEADER: &str = r#"{"duro_export":2,"class":"C","id":"00","name":null,"alarm_ms":null}"#;

    #[test]
    fn a_whole_export_is_checked_to_its_end_line() {
        let entries: Vec<String> = (0..7)
            .map(|i| format!(r#"{{"key":"k{i}","value":{i}}}"#))
            .collect();
        let end = r#"{"duro_end":{"entries":7}}"#;
        let mut all = vec![HEADER];
        all.extend(entries.iter().map(String::as_str));
        all.push(end);
        assert_eq!(checked(&all).unwrap().entries, 7);
        // Cut off before its end line, or miscounted: refused.
        let cut = checked(&all[..5]).unwrap_err();
        assert!(cut.contains("cut off"), "{cut}");
        let mut miscounted = all.clone();
        miscounted[8] = r#"{"duro_end":{"entries":6}}"#;
        assert!(checked(&miscounted).unwrap_err().contains("line 9"));
    }

    #[test]
    fn only_known_internal_entries_pass() {
        for (line, says) in [
            (
                r#"{"internal":"ff7a7a","hex":"00"}"#,
                "unknown internal entry ff7a7a",
            ),
            (
                r#"{"internal":"ff","hex":"00"}"#,
                "unknown internal entry ff",
            ),
            (
                r#"{"internal":"ff73","hex":"ffffffffffffff7f"}"#,
                "SQL database of",
            ),
            (r#"{"internal":"ff73","hex":"00"}"#, "not 8 bytes"),
            (
                r#"{"internal":"ff7000000000","hex":"00"}"#,
                "an SQL page of 1 bytes",
            ),
        ] {
            let end = r#"{"duro_end":{"entries":1}}"#;
            let error = checked(&[HEADER, line, end]).unwrap_err();
            assert!(
                error.contains(says) && error.starts_with("line 2"),
                "{line}: {error}"
            );
        }
        let long = format!(r#"{{"internal":"ff{}","hex":"00"}}"#, "ab".repeat(2500));
        let error = checked(&[HEADER, &long, r#"{"duro_end":{"entries":1}}"#]).unwrap_err();
        assert!(error.contains("unknown internal entry"), "{error}");
        // Pages that do not form a database.
        let garbage = format!(
            r#"{{"internal":"ff7000000000","hex":"{}"}}"#,
            "ab".repeat(4096)
        );
        let size = r#"{"internal":"ff73","hex":"0010000000000000"}"#;
        let error =
            checked(&[HEADER, &garbage, size, r#"{"duro_end":{"entries":2}}"#]).unwrap_err();
        assert!(error.contains("the SQL database"), "{error}");
        let error = checked(&[HEADER, &garbage, r#"{"duro_end":{"entries":1}}"#]).unwrap_err();
        assert!(error.contains("without the database's size"), "{error}");
    }

    #[test]
    fn the_sql_size_entry_comes_in_the_last_part() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let lines = [
            HEADER.to_string(),
            format!(
                r#"{{"internal":"ff7000000000","hex":"{}"}}"#,
                "00".repeat(4096)
            ),
            r#"{"internal":"ff73","hex":"0010000000000000"}"#.to_string(),
            r#"{"key":"z","value":1}"#.to_string(),
        ];
        std::fs::write(&spool, lines.join("\n")).unwrap();
        let mut parts = Parts::new(&spool, limits()).unwrap();
        let mut got = Vec::new();
        while let Some((part, last)) = parts.next_part().unwrap() {
            got.push((part.iter().map(|e| e.key.clone()).collect::<Vec<_>>(), last));
        }
        assert_eq!(
            got,
            [
                (vec![vec![0xFF, b'p', 0, 0, 0, 0]], false),
                (vec![b"z".to_vec(), SIZE_KEY.to_vec()], true)
            ]
        );
    }
}
