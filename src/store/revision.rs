//! A trade record's revision, as the store keeps it in the record's
//! history: the record as of that revision, and what changed.

use std::sync::Arc;
use std::time::SystemTime;

use super::stored::Stored;
use crate::domain::{Source, TradeRecord};

/// One revision of a trade record, as kept in its history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Revision {
    pub number: u32,
    pub time: SystemTime,
    /// The fields it changed; empty for the first.
    pub changed: Vec<String>,
    /// Where its figures come from.
    pub source: Source,
    /// The record as of this revision.
    pub record: Arc<Stored<TradeRecord>>,
}
