//! `Stored<T>`: an item as the store holds it, beside a slot for its wire
//! encoding.
//!
//! Why here and not in the domain: the domain's types say what a record
//! or a report is; how an answer carries it is the API's business. Stored
//! items never change (a revision is a new item), so the API encodes one
//! at most once, on first use, and every answer and subscriber that
//! carries it shares those bytes. The store never reads them.

use std::ops::Deref;
use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{CountryCode, HsCode, Period, Sequenced, TradeKeyed};

/// A stored item and its encoding, once made.
pub(crate) struct Stored<T> {
    value: T,
    encoded: OnceLock<Bytes>,
}

impl<T> Stored<T> {
    /// `value`, not yet encoded.
    pub(crate) fn new(value: T) -> Stored<T> {
        Stored {
            value,
            encoded: OnceLock::new(),
        }
    }

    /// The item to change, before it is shared: the encoding, made from
    /// the item as it was, is dropped.
    pub(crate) fn value_mut(&mut self) -> &mut T {
        self.encoded = OnceLock::new();
        &mut self.value
    }

    /// The item's encoding: `encode`'s, made on the first call and kept.
    pub(crate) fn encoded(&self, encode: impl FnOnce(&T) -> Bytes) -> Bytes {
        self.encoded.get_or_init(|| encode(&self.value)).clone()
    }
}

impl<T> Deref for Stored<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// A copy of the item, not yet encoded.
impl<T: Clone> Clone for Stored<T> {
    fn clone(&self) -> Self {
        Stored::new(self.value.clone())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Stored<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

/// Equal when the items are: the encoding is derived from the item.
impl<T: PartialEq> PartialEq for Stored<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// Written as the item alone, so logs and snapshots hold no encodings and
/// read as they did before the encoding moved here.
impl<T: Serialize> Serialize for Stored<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Stored<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Stored::new)
    }
}

/// A stored item is filtered and indexed as the item is.
impl<T: TradeKeyed> TradeKeyed for Stored<T> {
    fn exporter(&self) -> CountryCode {
        self.value.exporter()
    }

    fn importer(&self) -> CountryCode {
        self.value.importer()
    }

    fn hs_code(&self) -> &HsCode {
        self.value.hs_code()
    }

    fn period(&self) -> &Period {
        self.value.period()
    }
}

/// A stored item is numbered as the item is.
impl<T: Sequenced> Sequenced for Stored<T> {
    fn sequence(&self) -> u64 {
        self.value.sequence()
    }
}

#[cfg(test)]
mod tests {
    use super::Stored;
    use bytes::Bytes;

    #[test]
    fn encoded_once_dropped_on_change_and_never_written() {
        let mut stored = Stored::new(7u32);
        let mut calls = 0;
        let mut encode = |v: &u32| {
            calls += 1;
            Bytes::from(v.to_string())
        };
        assert_eq!(stored.encoded(&mut encode), "7");
        assert_eq!(stored.encoded(&mut encode), "7", "kept");
        *stored.value_mut() = 8;
        assert_eq!(
            stored.encoded(&mut encode),
            "8",
            "made again after a change"
        );
        assert_eq!(calls, 2);
        // Logs and snapshots hold the item alone, as before the move.
        assert_eq!(
            postcard::to_stdvec(&stored).unwrap(),
            postcard::to_stdvec(&8u32).unwrap()
        );
        let read: Stored<u32> = postcard::from_bytes(&postcard::to_stdvec(&8u32).unwrap()).unwrap();
        assert_eq!(*read, 8);
    }
}
