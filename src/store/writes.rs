//! The store's writes: every write is a `Command`, run by `submit` through
//! the store's writer, the committer (memory or the local log) or the
//! follower (JetStream), and answered with its `Outcome`. The reads are in
//! the parent module.

use std::sync::Arc;

use tokio::sync::oneshot;
use ulid::Ulid;

use super::group::{Answer, Job};
use super::state::{Command, Outcome};
use super::stored::Stored;
use super::{RequestKey, Store, Writer};
use crate::domain::{Announcement, ExportReport, RecordPatch, Source, TradeRecord};
use crate::error::{Error, Result};

/// What a write with an optional request_id stored; for a retry of a
/// request already done, what that request stored, and nothing new.
#[derive(Debug)]
pub(crate) struct Written<T> {
    pub(crate) value: T,
    /// The request_id named a request already done: `value` is its first
    /// outcome, and nothing was written now.
    pub(crate) repeated: bool,
}

impl<T> Written<T> {
    fn new(value: T, repeated: bool) -> Written<T> {
        Written { value, repeated }
    }
}

impl Store {
    /// Runs a write through the store's writer: the committer (memory or
    /// the local log) or the follower (JetStream), which answer it through
    /// the same group-commit core (`group.rs`).
    async fn submit(&self, command: Command) -> Result<Answer> {
        self.inner.shared.check_fence()?;
        let closed = || Error::Unavailable {
            message: "the store is closed".into(),
            resume_after: None,
        };
        let (reply, answer) = oneshot::channel();
        let job = Job { command, reply };
        match &self.inner.writer {
            Some(Writer::Local(queue, _)) => queue.send(job).map_err(|_| closed())?,
            Some(Writer::Replica(queue)) => queue.send(job).map_err(|_| closed())?,
            None => return Err(closed()),
        }
        answer.await.map_err(|_| closed())?
    }

    /// Stores `records` all or nothing, assigning ids and create times.
    pub(crate) async fn create_trade_records(
        &self,
        records: Vec<TradeRecord>,
        request: Option<RequestKey>,
    ) -> Result<Written<Vec<Arc<Stored<TradeRecord>>>>> {
        let answer = self
            .submit(Command::CreateTradeRecords { records, request })
            .await?;
        match answer.outcome {
            Outcome::TradeRecords(stored) => Ok(Written::new(stored, answer.repeated)),
            other => Err(unexpected(other)),
        }
    }

    /// Revises a record's figures; `etag` is the revision the caller read.
    pub(crate) async fn update_trade_record(
        &self,
        id: Ulid,
        patch: RecordPatch,
        etag: Option<u32>,
        source: Option<Source>,
    ) -> Result<Arc<Stored<TradeRecord>>> {
        let command = Command::UpdateTradeRecord {
            id,
            patch,
            etag,
            source,
        };
        match self.submit(command).await?.outcome {
            Outcome::TradeRecords(mut records) if records.len() == 1 => records
                .pop()
                .ok_or_else(|| Error::Internal("no record".into())),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) async fn delete_trade_record(&self, id: Ulid) -> Result<()> {
        self.submit(Command::DeleteTradeRecord(id)).await.map(drop)
    }

    pub(crate) async fn create_announcement(
        &self,
        announcement: Announcement,
        request: Option<RequestKey>,
    ) -> Result<Written<Arc<Announcement>>> {
        let command = Command::CreateAnnouncement {
            announcement,
            request,
        };
        let answer = self.submit(command).await?;
        match answer.outcome {
            Outcome::Announcement(stored) => Ok(Written::new(stored, answer.repeated)),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) async fn delete_announcement(&self, id: Ulid) -> Result<()> {
        self.submit(Command::DeleteAnnouncement(id)).await.map(drop)
    }

    /// Publishes a report: links or stores its figures as trade records,
    /// numbers it, stores it and broadcasts it, as one write.
    pub(crate) async fn publish_export_report(
        &self,
        report: ExportReport,
        request: Option<RequestKey>,
    ) -> Result<Written<Arc<Stored<ExportReport>>>> {
        let answer = self
            .submit(Command::PublishExportReport { report, request })
            .await?;
        match answer.outcome {
            Outcome::ExportReport(published) => Ok(Written::new(published, answer.repeated)),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(outcome: Outcome) -> Error {
    Error::Internal(format!("unexpected outcome {outcome:?}"))
}
