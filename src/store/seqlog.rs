//! A numbered log of items: sequences strictly increase from 1 and are never
//! reused; the oldest items fall off past the retention count.

use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug)]
pub(super) struct SeqLog<T> {
    items: BTreeMap<u64, Arc<T>>,
    head: u64,
    /// Every sequence below `floor` has fallen off the log.
    floor: u64,
    retention: usize,
}

/// A resume point older than the retained items; carries the oldest
/// sequence that is still retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Evicted {
    pub oldest_retained: u64,
}

impl<T> SeqLog<T> {
    pub(super) fn new(retention: usize) -> Self {
        SeqLog {
            items: BTreeMap::new(),
            head: 0,
            floor: 1,
            retention: retention.max(1),
        }
    }

    /// A log as a snapshot recorded it. Trimming to `retention` waits for
    /// the next append.
    pub(super) fn restore(
        retention: usize,
        head: u64,
        floor: u64,
        items: impl IntoIterator<Item = (u64, Arc<T>)>,
    ) -> Self {
        SeqLog {
            items: items.into_iter().collect(),
            head,
            floor: floor.max(1),
            retention: retention.max(1),
        }
    }

    /// The retained items, oldest first.
    pub(super) fn items(&self) -> impl Iterator<Item = &Arc<T>> {
        self.items.values()
    }

    /// The latest sequence assigned, 0 before the first.
    pub(super) fn head(&self) -> u64 {
        self.head
    }

    pub(super) fn next_sequence(&self) -> u64 {
        self.head + 1
    }

    pub(super) fn oldest_retained(&self) -> u64 {
        self.floor
    }

    /// Appends an item numbered `next_sequence()`; returns what fell off.
    pub(super) fn append(&mut self, sequence: u64, item: Arc<T>) -> Vec<Arc<T>> {
        debug_assert_eq!(sequence, self.next_sequence());
        self.head = sequence;
        self.items.insert(sequence, item);
        let mut evicted = Vec::new();
        while self.items.len() > self.retention {
            if let Some((seq, old)) = self.items.pop_first() {
                self.floor = seq + 1;
                evicted.push(old);
            }
        }
        evicted
    }

    pub(super) fn get(&self, sequence: u64) -> Option<&Arc<T>> {
        self.items.get(&sequence)
    }

    pub(super) fn remove(&mut self, sequence: u64) -> Option<Arc<T>> {
        self.items.remove(&sequence)
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Up to `limit` retained items numbered above `after`, in order.
    pub(super) fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<T>>, Evicted> {
        if after.saturating_add(1) < self.floor {
            return Err(Evicted {
                oldest_retained: self.floor,
            });
        }
        Ok(self
            .items
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(_, item)| Arc::clone(item))
            .collect())
    }

    /// The retained items by sequence.
    pub(super) fn items_by_sequence(&self) -> &BTreeMap<u64, Arc<T>> {
        &self.items
    }
}

/// The keys of `map` above `after`, ascending.
pub(crate) fn keys_after<K: Ord + Copy, V>(
    map: &BTreeMap<K, V>,
    after: Option<K>,
) -> impl Iterator<Item = K> + '_ {
    use std::ops::Bound::{Excluded, Unbounded};
    map.range((after.map_or(Unbounded, Excluded), Unbounded))
        .map(|(k, _)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_past_retention_and_refuses_old_resume_points() {
        let mut log = SeqLog::new(2);
        for seq in 1..=3 {
            log.append(seq, Arc::new(seq));
        }
        assert_eq!(log.oldest_retained(), 2);
        assert_eq!(log.read_after(0, 10), Err(Evicted { oldest_retained: 2 }));
        let got: Vec<u64> = log.read_after(1, 10).unwrap().iter().map(|a| **a).collect();
        assert_eq!(got, vec![2, 3]);
        assert!(log.read_after(3, 10).unwrap().is_empty());
    }
}
