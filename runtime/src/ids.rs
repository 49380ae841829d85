//! Class names and object ids: `id-from-name`, `new-unique-id`, `id-from-string`.
//!
//! An id is 32 bytes shown as 64 lowercase hex characters: a 16-byte body (derived from the name,
//! or random) followed by a 16-byte check, `HMAC-SHA256(class key, body)` truncated. The class key
//! is derived from a secret kept in the database, so ids are stable across restarts, and an id
//! made for another class (or made up) fails the check. Pure: no I/O here.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest class name, in bytes. Class names appear in every storage key.
pub const MAX_CLASS_NAME_BYTES: usize = 64;

/// A validated class name: an ASCII letter, then letters, digits, `_` or `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassName(Arc<str>);

impl serde::Serialize for ClassName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ClassName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl ClassName {
    pub fn parse(name: &str) -> Result<Self, IdError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_CLASS_NAME_BYTES
            && name.as_bytes()[0].is_ascii_alphabetic()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(name.into()))
        } else {
            Err(IdError::BadClassName(name.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClassName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClassName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// An object id: 16 bytes of body, 16 bytes of check.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 32]);

impl ObjectId {
    pub const HEX_LEN: usize = 64;

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// An id from its stored bytes (already verified when it was stored).
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.to_hex())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error(
        "invalid class name {0:?}: 1 to 64 characters, a letter first, then letters, digits, '_' or '-'"
    )]
    BadClassName(String),
    #[error("malformed object id: expected 64 lowercase hex characters")]
    Malformed,
    #[error("object id does not belong to class {0}")]
    Foreign(ClassName),
}

/// The secret from which every class's id key derives. Kept in the database's meta table.
#[derive(Clone)]
pub struct IdSecret([u8; 32]);

impl IdSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn random() -> Self {
        Self(random_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id minter of one class, keyed by `label`: the class's name, or what a renamed class
    /// keeps deriving its ids from.
    pub fn class_ids(&self, class: &ClassName, label: &str) -> ClassIds {
        let key = hmac(&keyed(&self.0), &[b"duro-class-key:", label.as_bytes()]);
        ClassIds {
            class: class.clone(),
            key: keyed(&key),
        }
    }
}

/// Identifies an object across the runtime: its class's storage incarnation (not the class's
/// name, so that a renamed class keeps its live objects) and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub incarnation: u64,
    pub id: ObjectId,
}

/// Mints and verifies the ids of one class.
#[derive(Clone)]
pub struct ClassIds {
    class: ClassName,
    /// HMAC state with the class key already absorbed: cloning it saves two of the four SHA-256
    /// blocks of every HMAC (ids are derived on every request).
    key: HmacSha256,
}

impl ClassIds {
    /// Deterministic: the same name always gives the same id in this class.
    pub fn from_name(&self, name: &str) -> ObjectId {
        let digest = hmac(&self.key, &[b"name:", name.as_bytes()]);
        self.seal(digest[..16].try_into().expect("16 of 32 bytes"))
    }

    /// A fresh random id, never equal to a named one in practice.
    pub fn new_unique(&self) -> ObjectId {
        let body: [u8; 32] = random_bytes();
        self.seal(body[..16].try_into().expect("16 of 32 bytes"))
    }

    /// Parses 64 lowercase hex characters and verifies the check against this class.
    pub fn from_string(&self, text: &str) -> Result<ObjectId, IdError> {
        let well_formed = text.len() == ObjectId::HEX_LEN
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            return Err(IdError::Malformed);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| IdError::Malformed)?;
        let mut mac = self.key.clone();
        mac.update(b"id:");
        mac.update(&bytes[..16]);
        mac.verify_truncated_left(&bytes[16..])
            .map_err(|_| IdError::Foreign(self.class.clone()))?;
        Ok(ObjectId(bytes))
    }

    fn seal(&self, body: [u8; 16]) -> ObjectId {
        let check = hmac(&self.key, &[b"id:", &body]);
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&body);
        bytes[16..].copy_from_slice(&check[..16]);
        ObjectId(bytes)
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes any key length")
}

fn hmac(key: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = key.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `bytes` random bytes in hex: error ids that tie a report to its log line, staging file names.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    hex::encode(buf)
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(class: &str) -> ClassIds {
        IdSecret::from_bytes([7; 32]).class_ids(&ClassName::parse(class).unwrap(), class)
    }

    #[test]
    fn names_give_stable_ids_that_verify() {
        let counter = ids("Counter");
        let a = counter.from_name("alice");
        assert_eq!(a, counter.from_name("alice"));
        assert_ne!(a, counter.from_name("bob"));
        assert_eq!(counter.from_string(&a.to_hex()), Ok(a));
    }

    #[test]
    fn unique_ids_differ_and_verify() {
        let counter = ids("Counter");
        let (a, b) = (counter.new_unique(), counter.new_unique());
        assert_ne!(a, b);
        assert_eq!(counter.from_string(&b.to_hex()), Ok(b));
    }

    #[test]
    fn foreign_and_malformed_ids_are_refused() {
        let other = ids("Other").from_name("alice").to_hex();
        assert!(matches!(
            ids("Counter").from_string(&other),
            Err(IdError::Foreign(_))
        ));
        let mut tampered = ids("Counter").from_name("alice").to_hex();
        tampered.replace_range(0..1, if tampered.starts_with('0') { "1" } else { "0" });
        assert!(ids("Counter").from_string(&tampered).is_err());
        for bad in ["", "abc", &"g".repeat(64), &"A".repeat(64), &"0".repeat(63)] {
            assert_eq!(ids("Counter").from_string(bad), Err(IdError::Malformed));
        }
    }

    #[test]
    fn class_names_are_validated() {
        assert!(ClassName::parse("Counter").is_ok());
        assert!(ClassName::parse("chat-room_2").is_ok());
        for bad in ["", "1abc", "a b", "a/b", &"a".repeat(65), "é"] {
            assert!(ClassName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
