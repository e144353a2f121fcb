//! Which stored record holds each `RecordKey` (exporter, importer, HS code,
//! period and source organization), so that an export report links to the
//! record it repeats instead of storing it twice.
//!
//! The table keeps only each key's hash and the record's id (24 bytes a
//! record); the key itself is read back from the record when two hashes
//! meet. A map of owned keys cost about 170 bytes a record: an eighth of
//! the store at 1M records.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::HashTable;
use ulid::Ulid;

use super::stored::Stored;
use crate::domain::TradeRecord;
use crate::domain::record::RecordKey;

#[derive(Default)]
pub(super) struct RecordKeys {
    /// (hash of the key, id of the first stored record with that key).
    table: HashTable<(u64, Ulid)>,
    hasher: RandomState,
}

type Records = BTreeMap<Ulid, Arc<Stored<TradeRecord>>>;

impl RecordKeys {
    /// The record that holds `key`.
    pub(super) fn get(&self, key: &RecordKey, records: &Records) -> Option<Ulid> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |(h, id)| *h == hash && holds(records, id, key))
            .map(|(_, id)| *id)
    }

    /// Makes `record` the holder of its key unless an earlier record holds
    /// it. `records` must not yet contain `record` (or contain it already).
    pub(super) fn insert(&mut self, record: &TradeRecord, records: &Records) {
        let key = record.key();
        let hash = self.hasher.hash_one(&key);
        if self
            .table
            .find(hash, |(h, id)| *h == hash && holds(records, id, &key))
            .is_none()
        {
            self.table
                .insert_unique(hash, (hash, record.id), |(h, _)| *h);
        }
    }

    /// Forgets `record` as the holder of its key (if it was).
    pub(super) fn remove(&mut self, record: &TradeRecord) {
        let hash = self.hasher.hash_one(record.key());
        if let Ok(entry) = self
            .table
            .find_entry(hash, |(h, id)| *h == hash && *id == record.id)
        {
            entry.remove();
        }
    }

    /// The ids that hold a key, sorted (for tests).
    #[cfg(test)]
    pub(super) fn holders(&self) -> Vec<Ulid> {
        let mut ids: Vec<Ulid> = self.table.iter().map(|(_, id)| *id).collect();
        ids.sort();
        ids
    }
}

fn holds(records: &Records, id: &Ulid, key: &RecordKey) -> bool {
    records.get(id).is_some_and(|r| r.key() == *key)
}
