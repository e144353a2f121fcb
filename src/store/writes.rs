//! The store's writes: every write is a `Command`, run by `submit` inline
//! in memory, or through the committer (local log) or the follower
//! (JetStream), and answered with its `Outcome`. The reads are in the
//! parent module.

use std::sync::Arc;

use tokio::sync::oneshot;
use ulid::Ulid;

use super::committer::Job;
use super::draft::{Draft, Drafted};
use super::state::{Command, Outcome};
use super::{RequestKey, Shared, Store, Writer};
use crate::domain::{Announcement, ExportReport, RecordPatch, Source, TradeRecord};
use crate::error::{Error, Result};

impl Store {
    /// Runs a write: inline in memory, or through the committer or the
    /// follower.
    async fn submit(&self, command: Command) -> Result<Outcome> {
        self.inner.shared.check_fence()?;
        let Some(writer) = &self.inner.writer else {
            let shared = &self.inner.shared;
            let mut state = shared.write();
            return match Draft::new(&state).execute(command)? {
                Drafted::Repeat(outcome) => Ok(outcome),
                Drafted::Mutate(mutation) => {
                    let (outcome, published) = state.apply(*mutation);
                    shared.broadcast(published);
                    Shared::gauge_items(&state);
                    Ok(outcome)
                }
                Drafted::Defer(_) => Err(Error::Internal(
                    "a command alone in its group was deferred".into(),
                )),
            };
        };
        let closed = || Error::Unavailable {
            message: "the store is closed".into(),
            resume_after: None,
        };
        let (reply, answer) = oneshot::channel();
        let job = Job { command, reply };
        match writer {
            Writer::Local(queue, _) => queue.send(job).map_err(|_| closed())?,
            Writer::Replica(queue) => queue.send(job).map_err(|_| closed())?,
        }
        answer.await.map_err(|_| closed())?
    }

    /// Stores `records` all or nothing, assigning ids and create times.
    pub(crate) async fn create_trade_records(
        &self,
        records: Vec<TradeRecord>,
        request: Option<RequestKey>,
    ) -> Result<Vec<Arc<TradeRecord>>> {
        match self
            .submit(Command::CreateTradeRecords { records, request })
            .await?
        {
            Outcome::TradeRecords(stored) => Ok(stored),
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
    ) -> Result<Arc<TradeRecord>> {
        let command = Command::UpdateTradeRecord {
            id,
            patch,
            etag,
            source,
        };
        match self.submit(command).await? {
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
    ) -> Result<Arc<Announcement>> {
        let command = Command::CreateAnnouncement {
            announcement,
            request,
        };
        match self.submit(command).await? {
            Outcome::Announcement(stored) => Ok(stored),
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
    ) -> Result<Arc<ExportReport>> {
        match self
            .submit(Command::PublishExportReport { report, request })
            .await?
        {
            Outcome::ExportReport(published) => Ok(published),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) async fn mark_demo_loaded(&self) -> Result<()> {
        self.submit(Command::MarkDemoLoaded).await.map(drop)
    }
}

fn unexpected(outcome: Outcome) -> Error {
    Error::Internal(format!("unexpected outcome {outcome:?}"))
}
