//! The request log: the outcome of each write that carried a request id,
//! so that a retry answers the first outcome and stores nothing (AIP-155),
//! for the last `capacity` of them.

use std::collections::{HashMap, VecDeque};

use super::{Operation, Outcome};
use crate::error::{Error, Result};
use crate::store::RequestKey;

/// Remembered outcomes of requests that carried a request id, oldest first
/// out once `capacity` is reached.
#[derive(Debug, Default)]
pub(in crate::store) struct RequestLog {
    outcomes: HashMap<(Operation, String), (u64, Outcome)>,
    order: VecDeque<(Operation, String)>,
    capacity: usize,
}

impl RequestLog {
    /// An empty log that remembers `capacity` requests.
    pub(super) fn new(capacity: usize) -> RequestLog {
        RequestLog {
            capacity,
            ..RequestLog::default()
        }
    }

    /// Every remembered request, oldest first, for a snapshot: its
    /// operation, id, fingerprint and outcome.
    pub(super) fn entries(&self) -> impl Iterator<Item = (Operation, String, u64, Outcome)> + '_ {
        self.order.iter().filter_map(|key| {
            let (fingerprint, outcome) = self.outcomes.get(key)?;
            Some((key.0, key.1.clone(), *fingerprint, outcome.clone()))
        })
    }

    /// The earlier outcome for this key, or None if it is new.
    pub(in crate::store) fn lookup(
        &self,
        op: Operation,
        key: Option<&RequestKey>,
    ) -> Result<Option<Outcome>> {
        let Some(key) = key else { return Ok(None) };
        match self.outcomes.get(&(op, key.request_id.clone())) {
            None => Ok(None),
            Some((fingerprint, outcome)) if *fingerprint == key.fingerprint => {
                Ok(Some(outcome.clone()))
            }
            Some(_) => Err(Error::AlreadyExists(format!(
                "the request id {:?} was already used for a different request",
                key.request_id
            ))),
        }
    }

    pub(super) fn remember(&mut self, op: Operation, key: Option<&RequestKey>, outcome: &Outcome) {
        let Some(key) = key else { return };
        let entry = (op, key.request_id.clone());
        self.outcomes
            .insert(entry.clone(), (key.fingerprint, outcome.clone()));
        self.order.push_back(entry);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }
}
