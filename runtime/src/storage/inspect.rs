//! What an operator sees of the stored objects: a class's objects (their keys, bytes and alarm)
//! and one object's entries, read from storage outside any event. Storage holds every
//! acknowledged write (the group writer applies a group to the engine before it resolves it);
//! the writes of an event still running are not in it. Nothing here activates an object.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::backend::{BackendError, Reader};
use super::schema::{self, CLASS_PREFIX_LEN, Table};
use super::sql::pages;
use crate::ids::ObjectId;

/// One stored object of a class: one with at least one key or an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub id: ObjectId,
    /// The name it was created by, stored at its first write (`None`: made by id, or stored
    /// before names were kept).
    pub name: Option<String>,
    /// How many keys it stores.
    pub keys: u64,
    /// The bytes of its keys and values.
    pub bytes: u64,
    /// When its alarm fires (ms since the Unix epoch), if it has one.
    pub alarm_ms: Option<i64>,
    /// The size of its SQL database (0: none); its pages are not among `keys` and `bytes`.
    pub sql_bytes: u64,
}

/// Some items, and where the next page starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Up to `limit` stored objects of the class `incarnation`, in id order, after `after`.
pub fn objects(
    db: &dyn Reader,
    incarnation: u64,
    after: Option<&ObjectId>,
    limit: usize,
) -> Result<Page<StoredObject>, BackendError> {
    let class = schema::class_prefix(incarnation);
    let start = match after {
        // Past every key of `after`: the next object's first key.
        Some(id) => schema::prefix_end(&schema::object_prefix(incarnation, id)),
        None => Some(class.clone()),
    };
    let Some(start) = start else {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    };
    let end = schema::prefix_end(&class).unwrap_or_else(|| vec![u8::MAX; CLASS_PREFIX_LEN + 1]);
    let bounds = || (Bound::Included(start.clone()), Bound::Excluded(end.clone()));
    // Counts per object, for the first `limit + 1` objects with keys (the one past the page
    // tells whether there is a next page).
    let mut found: BTreeMap<[u8; 32], Counts> = BTreeMap::new();
    for entry in db.range(Table::Data, bounds(), false)? {
        let (key, value) = entry?;
        let Some(id) = object_id(&key) else { continue };
        if !found.contains_key(&id) && found.len() > limit {
            break;
        }
        found
            .entry(id)
            .or_default()
            .add(&key[CLASS_PREFIX_LEN + 32..], &value);
    }
    // Objects that only have an alarm.
    for entry in db.alarms(bounds())?.take(limit + 1) {
        let (key, _) = entry?;
        if let Some(id) = object_id(&key) {
            found.entry(id).or_default();
        }
    }
    let mut items = Vec::with_capacity(limit.min(found.len()));
    for (id, counts) in found.into_iter().take(limit + 1) {
        if items.len() == limit {
            // The one past the page: only says there is a next page.
            return Ok(Page {
                next: items.last().map(|o: &StoredObject| o.id.to_hex()),
                items,
            });
        }
        let id = ObjectId::from_bytes(id);
        let alarm_ms = db.alarm(&schema::object_prefix(incarnation, &id))?;
        items.push(counts.into_object(id, alarm_ms));
    }
    Ok(Page { items, next: None })
}

/// Up to `limit` objects of the class `incarnation` whose names start with `prefix`, in name
/// order, after the name `after`: a range of the name index, then each object's own range.
pub fn named_objects(
    db: &dyn Reader,
    incarnation: u64,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<StoredObject>, BackendError> {
    let (start, end) = page_range(&schema::class_prefix(incarnation), prefix, after);
    let mut items = Vec::new();
    if start >= end {
        return Ok(Page { items, next: None });
    }
    let range = (Bound::Included(start), Bound::Excluded(end));
    for entry in db.range(Table::Names, range, false)? {
        let (key, value) = entry?;
        if items.len() == limit {
            return Ok(Page {
                next: items.last().and_then(|o: &StoredObject| o.name.clone()),
                items,
            });
        }
        let Ok(id) = <[u8; 32]>::try_from(value.as_ref()) else {
            continue;
        };
        let id = ObjectId::from_bytes(id);
        let mut object = stored_object(db, incarnation, id)?;
        object.name = Some(String::from_utf8_lossy(&key[CLASS_PREFIX_LEN..]).into_owned());
        items.push(object);
    }
    Ok(Page { items, next: None })
}

/// The keys under `base` that start with `base` + `prefix`, strictly after `base` + `after` when
/// a previous page ended there: `[start, end)` (empty when `start >= end`).
fn page_range(base: &[u8], prefix: &str, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let scope = [base, prefix.as_bytes()].concat();
    let end = schema::prefix_end(&scope).unwrap_or_else(|| vec![u8::MAX; scope.len() + 1]);
    let start = match after {
        // Strictly after `after`: the smallest key greater than it is `after` + 0x00.
        Some(after) if after.as_bytes() >= prefix.as_bytes() => {
            [base, after.as_bytes(), &[0]].concat()
        }
        _ => scope,
    };
    (start, end)
}

/// The name the object `id` stored at its first write, if any.
pub fn stored_name(
    db: &dyn Reader,
    incarnation: u64,
    id: &ObjectId,
) -> Result<Option<String>, BackendError> {
    let key = [
        schema::object_prefix(incarnation, id).as_slice(),
        &schema::NAME_KEY,
    ]
    .concat();
    let name = db.get(Table::Data, &key)?;
    Ok(name.map(|name| String::from_utf8_lossy(&name).into_owned()))
}

/// One object's counts and alarm, from its own range.
fn stored_object(
    db: &dyn Reader,
    incarnation: u64,
    id: ObjectId,
) -> Result<StoredObject, BackendError> {
    let object = schema::object_prefix(incarnation, &id);
    let end = schema::prefix_end(&object).expect("an object prefix is not all 0xFF");
    let mut counts = Counts::default();
    for entry in db.range(
        Table::Data,
        (Bound::Included(object.clone()), Bound::Excluded(end)),
        false,
    )? {
        let (key, value) = entry?;
        counts.add(&key[object.len()..], &value);
    }
    Ok(counts.into_object(id, db.alarm(&object)?))
}

/// What a listing counts of one object.
#[derive(Default)]
struct Counts {
    keys: u64,
    bytes: u64,
    sql_bytes: u64,
    name: Option<String>,
}

impl Counts {
    /// Counts one of the object's entries (`key` without the object prefix).
    fn add(&mut self, key: &[u8], value: &[u8]) {
        if key.first() != Some(&schema::INTERNAL) {
            self.keys += 1;
            self.bytes += (key.len() + value.len()) as u64;
        } else if key == pages::SIZE_KEY {
            self.sql_bytes = pages::decode_size(value);
        } else if key == schema::NAME_KEY {
            self.name = Some(String::from_utf8_lossy(value).into_owned());
        }
    }

    fn into_object(self, id: ObjectId, alarm_ms: Option<i64>) -> StoredObject {
        StoredObject {
            id,
            name: self.name,
            keys: self.keys,
            bytes: self.bytes,
            alarm_ms,
            sql_bytes: self.sql_bytes,
        }
    }
}

/// What [`entries`] reads of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntries {
    /// Its entries as (key, value bytes).
    pub entries: Page<(String, Vec<u8>)>,
    /// When its alarm fires, if it has one.
    pub alarm_ms: Option<i64>,
    /// The name it stored at its first write, if any.
    pub name: Option<String>,
}

/// One object's entries whose keys start with `prefix`, in key order, after the key `after`, at
/// most `limit`; and its alarm.
pub fn entries(
    db: &dyn Reader,
    incarnation: u64,
    id: &ObjectId,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<ObjectEntries, BackendError> {
    let object = schema::object_prefix(incarnation, id);
    let (start, end) = page_range(&object, prefix, after);
    // The user's keys only: the SQL database's pages come after them.
    let end = end.min([object.as_slice(), &[schema::INTERNAL]].concat());
    let alarm_ms = db.alarm(&object)?;
    let name = stored_name(db, incarnation, id)?;
    let mut items = Vec::new();
    let mut next = None;
    if start >= end {
        // `after` is past every key with the prefix.
        return Ok(ObjectEntries {
            entries: Page { items, next },
            alarm_ms,
            name,
        });
    }
    let range = (Bound::Included(start), Bound::Excluded(end));
    for entry in db.range(Table::Data, range, false)? {
        let (key, value) = entry?;
        if items.len() == limit {
            next = items.last().map(|(key, _): &(String, Vec<u8>)| key.clone());
            break;
        }
        let user_key = &key[object.len()..];
        items.push((
            String::from_utf8_lossy(user_key).into_owned(),
            value.to_vec(),
        ));
    }
    Ok(ObjectEntries {
        entries: Page { items, next },
        alarm_ms,
        name,
    })
}

/// The object id of a data key or an alarm key (`[class (8)][id (32)]...`).
fn object_id(key: &[u8]) -> Option<[u8; 32]> {
    key.get(CLASS_PREFIX_LEN..CLASS_PREFIX_LEN + 32)?
        .try_into()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::RedbReader;
    use redb::{Database, ReadableDatabase};

    fn reader(db: &Database) -> RedbReader {
        RedbReader(db.begin_read().unwrap())
    }

    /// Objects 1..=3 of class 7 with keys; object 4 with only an alarm; a neighbour class 8.
    fn database() -> (tempfile::TempDir, std::sync::Arc<Database>) {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::open(dir.path()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut data = txn.open_table(schema::DATA).unwrap();
            for (class, object, key) in [
                (7, 1, "a"),
                (7, 1, "b"),
                (7, 2, "a"),
                (7, 3, "x"),
                (8, 1, "a"),
            ] {
                let key = [
                    schema::object_prefix(class, &id(object)).as_slice(),
                    key.as_bytes(),
                ]
                .concat();
                data.insert(key.as_slice(), b"1".as_slice()).unwrap();
            }
            let mut alarms = txn.open_table(schema::ALARMS).unwrap();
            alarms
                .insert(schema::object_prefix(7, &id(4)).as_slice(), 99)
                .unwrap();
            alarms
                .insert(schema::object_prefix(7, &id(2)).as_slice(), 42)
                .unwrap();
        }
        txn.commit().unwrap();
        (dir, db)
    }

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes([n; 32])
    }

    #[test]
    fn objects_come_in_pages_with_their_alarms() {
        let (_dir, db) = database();
        let all = objects(&reader(&db), 7, None, 10).unwrap();
        let summary: Vec<_> = all
            .items
            .iter()
            .map(|o| (o.id.to_hex()[..2].to_string(), o.keys, o.alarm_ms))
            .collect();
        assert_eq!(
            summary,
            [
                ("01".into(), 2, None),
                ("02".into(), 1, Some(42)),
                ("03".into(), 1, None),
                ("04".into(), 0, Some(99))
            ]
        );
        assert_eq!(all.next, None);
        let first = objects(&reader(&db), 7, None, 2).unwrap();
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.next.as_deref(), Some(hex::encode([2u8; 32]).as_str()));
        let rest = objects(&reader(&db), 7, Some(&id(2)), 2).unwrap();
        let ids: Vec<_> = rest
            .items
            .iter()
            .map(|o| o.id.to_hex()[..2].to_string())
            .collect();
        assert_eq!(
            (ids, rest.next),
            (vec!["03".to_string(), "04".to_string()], None)
        );
    }

    #[test]
    fn entries_come_in_pages_within_a_prefix() {
        let (_dir, db) = database();
        let both = entries(&reader(&db), 7, &id(1), "", None, 10).unwrap();
        let keys: Vec<_> = both.entries.items.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        let first = entries(&reader(&db), 7, &id(1), "", None, 1).unwrap();
        assert_eq!(first.entries.next.as_deref(), Some("a"));
        let second = entries(&reader(&db), 7, &id(1), "", Some("a"), 1).unwrap();
        assert_eq!(second.entries.items[0].0, "b");
        assert_eq!(second.entries.next, None);
        assert!(
            entries(&reader(&db), 7, &id(1), "a", Some("zz"), 5)
                .unwrap()
                .entries
                .items
                .is_empty()
        );
        let alarm_only = entries(&reader(&db), 7, &id(4), "", None, 5).unwrap();
        assert_eq!(
            (alarm_only.entries.items.len(), alarm_only.alarm_ms),
            (0, Some(99))
        );
    }
}
