//! The running event's write set: a stack of layers, the event's own at the bottom and one per
//! open transaction above it. Reads look from the top layer down; a transaction's commit folds
//! its layer into the one below, a rollback drops it; the event's end takes the bottom layer
//! (rolling back what is still open) for the commit. Empty between events.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::StorageError;

/// Deepest transaction nesting; guards against a guest that only ever begins.
const MAX_TRANSACTION_DEPTH: usize = 64;

/// One layer of writes.
#[derive(Default)]
pub(super) struct Layer {
    /// Key -> new value, or `None` for a delete.
    pub writes: BTreeMap<Vec<u8>, Option<Bytes>>,
    /// A `delete-all` happened in this layer (before its `writes`). It leaves the alarm alone.
    pub cleared: bool,
    /// The alarm as this layer left it: `None` untouched, `Some(None)` deleted, `Some(Some(t))`
    /// set for `t`.
    pub alarm: Option<Option<i64>>,
    /// Bytes (keys + values) held in `writes`.
    bytes: usize,
}

impl Layer {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        !self.cleared && self.writes.is_empty() && self.alarm.is_none()
    }

    fn insert(&mut self, key: Vec<u8>, value: Option<Bytes>) {
        self.bytes += size(&key, value.as_ref());
        let key_len = key.len();
        if let Some(old) = self.writes.insert(key, value) {
            self.bytes -= key_len + old.as_ref().map_or(0, Bytes::len);
        }
    }

    fn clear(&mut self) {
        self.writes.clear();
        self.bytes = 0;
        self.cleared = true;
    }
}

/// What one write holds in a write set.
pub(super) fn size(key: &[u8], value: Option<&Bytes>) -> usize {
    key.len() + value.map_or(0, Bytes::len)
}

/// See the module's header.
#[derive(Default)]
pub(super) struct WriteSet {
    layers: Vec<Layer>,
}

impl WriteSet {
    /// Starts an event's write set (dropping anything left over).
    pub fn begin(&mut self) {
        self.layers.clear();
        self.layers.push(Layer::default());
    }

    /// Drops every write (a trap, an error).
    pub fn abort(&mut self) {
        self.layers.clear();
    }

    /// Ends the event: its own layer, transactions still open rolled back; `None` outside an
    /// event.
    pub fn finish(&mut self) -> Option<Layer> {
        let mut layers = std::mem::take(&mut self.layers);
        layers.truncate(1);
        layers.pop()
    }

    /// The layers, bottom (the event's) first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.layers.len() > 1
    }

    /// What the write set says of `key`: `Some(value)` (`None`: deleted, or cleared) when it
    /// wrote or cleared it, `None` when it did not touch it.
    pub fn lookup(&self, key: &[u8]) -> Option<Option<Bytes>> {
        for layer in self.layers.iter().rev() {
            if let Some(value) = layer.writes.get(key) {
                return Some(value.clone());
            }
            if layer.cleared {
                return Some(None);
            }
        }
        None
    }

    /// The alarm as the event left it so far, if it touched it.
    pub fn alarm(&self) -> Option<Option<i64>> {
        self.layers.iter().rev().find_map(|l| l.alarm)
    }

    /// Sets (`Some`) or deletes (`None`) the alarm.
    pub fn set_alarm(&mut self, at_ms: Option<i64>) -> Result<(), StorageError> {
        self.top()?.alarm = Some(at_ms);
        Ok(())
    }

    /// Forgets whatever the event did to the alarm.
    pub fn discard_alarm_change(&mut self) {
        for layer in &mut self.layers {
            layer.alarm = None;
        }
    }

    /// Takes the event's alarm change out of its layer (to put back with [`Self::keep_alarm`]).
    pub fn take_alarm(&mut self) -> Option<Option<i64>> {
        self.layers.first_mut().and_then(|l| l.alarm.take())
    }

    /// Puts an alarm change taken with [`Self::take_alarm`] back in the event's layer.
    pub fn keep_alarm(&mut self, alarm: Option<Option<i64>>) {
        if let Some(base) = self.layers.first_mut() {
            base.alarm = alarm;
        }
    }

    /// Writes (`None`: deletes) `key` in the top layer.
    pub fn insert(&mut self, key: &[u8], value: Option<Bytes>) -> Result<(), StorageError> {
        self.top()?.insert(key.to_vec(), value);
        Ok(())
    }

    /// Deletes everything the object stored (not its alarm).
    pub fn clear(&mut self) -> Result<(), StorageError> {
        self.top()?.clear();
        Ok(())
    }

    /// Bytes held in all layers.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|l| l.bytes).sum()
    }

    pub fn begin_transaction(&mut self) -> Result<(), StorageError> {
        self.top()?;
        if self.layers.len() > MAX_TRANSACTION_DEPTH {
            return Err(StorageError::InvalidArgument(format!(
                "transactions nest at most {MAX_TRANSACTION_DEPTH} deep"
            )));
        }
        self.layers.push(Layer::default());
        Ok(())
    }

    /// Folds the innermost transaction into the layer below.
    pub fn commit_transaction(&mut self) -> Result<(), StorageError> {
        if !self.in_transaction() {
            return Err(StorageError::NoTransaction);
        }
        let inner = self.layers.pop().expect("checked: at least two layers");
        let outer = self
            .layers
            .last_mut()
            .expect("checked: at least two layers");
        if inner.cleared {
            outer.clear();
        }
        for (key, value) in inner.writes {
            outer.insert(key, value);
        }
        if inner.alarm.is_some() {
            outer.alarm = inner.alarm;
        }
        Ok(())
    }

    /// Drops the innermost transaction.
    pub fn rollback_transaction(&mut self) -> Result<(), StorageError> {
        if !self.in_transaction() {
            return Err(StorageError::NoTransaction);
        }
        self.layers.pop();
        Ok(())
    }

    fn top(&mut self) -> Result<&mut Layer, StorageError> {
        self.layers
            .last_mut()
            .ok_or_else(|| StorageError::Internal("storage used outside an event".into()))
    }
}
