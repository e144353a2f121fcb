//! Checking a group of commands without changing the state.
//!
//! The committer drafts a whole group under a read lock (readers go on),
//! makes the drafted mutations durable with no lock held, and only then
//! applies them under a short write lock. So the group's later commands
//! must be checked against the state *plus the effects of its earlier
//! commands*, which `Draft` keeps as a small overlay: ids, sequences,
//! record keys created, and what was deleted or had its references changed.
//!
//! The overlay models only what commands of one group can see of each
//! other. Anything else, such as deleting a record that an earlier command
//! of the group created, deleted or referred to, or reusing a request id
//! the group already used, is not guessed at: the command is *deferred* to
//! the next group, where it sees those effects applied. A group's first
//! command never defers (its overlay is empty), so deferring always makes
//! progress. Deferring only moves a command later within its own call,
//! which keeps the result linearizable.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use ulid::Ulid;

use super::state::{Command, Mutation, Operation, Outcome, State};
use crate::domain::record::RecordKey;
use crate::domain::{RecordPatch, Source, TradeRecord};
use crate::error::{Error, Result};

/// What drafting one command gave.
#[derive(Debug)]
pub(super) enum Drafted {
    /// A retry of a remembered request: its first outcome, nothing to do.
    Repeat(Outcome),
    /// The checked write, to log and then apply.
    Mutate(Box<Mutation>),
    /// Depends on an earlier command of this group in a way the overlay
    /// does not model; it runs again in the next group (the command is
    /// handed back, for a writer that gave it up to the draft).
    Defer(Box<Command>),
}

/// The state as it will be once the mutations drafted so far are applied,
/// as far as the next command's checks need to know.
#[derive(Debug)]
pub(super) struct Draft<'s> {
    state: &'s State,
    last_id: Ulid,
    next_report: u64,
    next_announcement: u64,
    /// Request ids used by this group.
    requests: HashSet<(Operation, String)>,
    /// Record keys first stored by this group, and the ids they point to.
    new_keys: HashMap<RecordKey, Ulid>,
    /// Records created in this group.
    created_records: HashSet<Ulid>,
    /// Records deleted in this group.
    deleted_records: HashSet<Ulid>,
    /// Records whose reference count this group changed.
    referenced_records: HashSet<Ulid>,
    /// Announcements deleted in this group.
    deleted_announcements: HashSet<Ulid>,
    /// Records revised in this group.
    updated_records: HashSet<Ulid>,
}

fn defer(command: Command) -> Result<Drafted> {
    Ok(Drafted::Defer(Box::new(command)))
}

fn mutate(mutation: Mutation) -> Result<Drafted> {
    Ok(Drafted::Mutate(Box::new(mutation)))
}

impl<'s> Draft<'s> {
    pub(super) fn new(state: &'s State) -> Draft<'s> {
        Draft {
            state,
            last_id: state.last_id,
            next_report: state.reports.next_sequence(),
            next_announcement: state.announcement_log.next_sequence(),
            requests: HashSet::new(),
            new_keys: HashMap::new(),
            created_records: HashSet::new(),
            deleted_records: HashSet::new(),
            referenced_records: HashSet::new(),
            deleted_announcements: HashSet::new(),
            updated_records: HashSet::new(),
        }
    }

    /// A new id above every id assigned so far, also after a restart on a
    /// clock that went backwards.
    fn next_id(&mut self) -> Result<Ulid> {
        let generated = Ulid::new();
        let id = if generated > self.last_id {
            generated
        } else {
            self.last_id
                .increment()
                .ok_or_else(|| Error::Internal("id space exhausted".into()))?
        };
        self.last_id = id;
        Ok(id)
    }

    /// Where `key` points once the group's earlier commands are applied;
    /// `Err(())` when an earlier command deleted the record it pointed to.
    fn key_target(&self, key: &RecordKey) -> Result<Option<Ulid>, ()> {
        match self.state.record_keys.get(key, &self.state.records) {
            Some(id) if self.deleted_records.contains(&id) => Err(()),
            Some(id) => Ok(Some(id)),
            None => Ok(self.new_keys.get(key).copied()),
        }
    }

    fn record_exists(&self, id: &Ulid) -> bool {
        !self.deleted_records.contains(id)
            && (self.created_records.contains(id) || self.state.records.contains_key(id))
    }

    /// Checks `command` against the state plus this group's earlier
    /// commands, and builds its mutation.
    pub(super) fn execute(&mut self, command: Command) -> Result<Drafted> {
        if let Some((op, request)) = command.request()
            && self.requests.contains(&(op, request.request_id.clone()))
        {
            return defer(command);
        }
        if let Some((op, request)) = command.request()
            && let Some(done) = self.state.requests.lookup(op, Some(request))?
        {
            return Ok(Drafted::Repeat(done));
        }
        let drafted = match command {
            Command::CreateTradeRecords { records, request } => {
                self.create_trade_records(records, request)?
            }
            Command::DeleteTradeRecord(id) => self.delete_trade_record(id)?,
            Command::CreateAnnouncement {
                announcement,
                request,
            } => self.create_announcement(announcement, request)?,
            Command::DeleteAnnouncement(id) => self.delete_announcement(id)?,
            Command::PublishExportReport { report, request } => {
                self.publish_export_report(report, request)?
            }
            Command::UpdateTradeRecord {
                id,
                patch,
                etag,
                source,
            } => self.update_trade_record(id, patch, etag, source)?,
        };
        if let Drafted::Mutate(mutation) = &drafted
            && let Some((op, request)) = mutation.request()
        {
            self.requests.insert((op, request.request_id.clone()));
        }
        Ok(drafted)
    }

    fn create_trade_records(
        &mut self,
        mut records: Vec<TradeRecord>,
        request: Option<super::RequestKey>,
    ) -> Result<Drafted> {
        if records.iter().any(|r| self.key_target(&r.key()).is_err()) {
            return defer(Command::CreateTradeRecords { records, request });
        }
        let now = SystemTime::now();
        for record in &mut records {
            record.id = self.next_id()?;
            record.create_time = now;
            self.created_records.insert(record.id);
            // The first record stored under a key is the one it points to.
            if let Ok(None) = self.key_target(&record.key()) {
                self.new_keys.insert(record.key(), record.id);
            }
        }
        mutate(Mutation::TradeRecordsCreated { records, request })
    }

    /// A revision of a record's figures, checked against the etag the
    /// caller read.
    fn update_trade_record(
        &mut self,
        id: Ulid,
        patch: RecordPatch,
        etag: Option<u32>,
        source: Option<Source>,
    ) -> Result<Drafted> {
        if self.created_records.contains(&id)
            || self.deleted_records.contains(&id)
            || self.updated_records.contains(&id)
        {
            return defer(Command::UpdateTradeRecord {
                id,
                patch,
                etag,
                source,
            });
        }
        let Some(current) = self.state.records.get(&id) else {
            return Err(Error::not_found("trade record", id));
        };
        let revision = current.revision.max(1);
        if let Some(etag) = etag
            && etag != revision
        {
            return Err(Error::StaleRevision {
                id: id.to_string(),
                read: etag,
                current: revision,
            });
        }
        self.updated_records.insert(id);
        mutate(Mutation::TradeRecordUpdated {
            record: patch.applied_to(current),
            number: revision + 1,
            time: SystemTime::now(),
            changed: patch.fields(),
            source: source.unwrap_or_else(|| current.source.clone()),
        })
    }

    fn delete_trade_record(&mut self, id: Ulid) -> Result<Drafted> {
        if self.created_records.contains(&id)
            || self.deleted_records.contains(&id)
            || self.referenced_records.contains(&id)
            || self.updated_records.contains(&id)
        {
            return defer(Command::DeleteTradeRecord(id));
        }
        if !self.state.records.contains_key(&id) {
            return Err(Error::not_found("trade record", id));
        }
        if let Some(refs) = self.state.record_refs.get(&id) {
            return Err(Error::FailedPrecondition(format!(
                "trade record {id} is referred to by {refs} export report(s) or announcement(s)"
            )));
        }
        self.deleted_records.insert(id);
        mutate(Mutation::TradeRecordDeleted(id))
    }

    fn create_announcement(
        &mut self,
        mut announcement: crate::domain::Announcement,
        request: Option<super::RequestKey>,
    ) -> Result<Drafted> {
        let related = &announcement.related_trade_record_ids;
        if related.iter().any(|id| self.deleted_records.contains(id)) {
            return defer(Command::CreateAnnouncement {
                announcement,
                request,
            });
        }
        for (i, id) in related.iter().enumerate() {
            if !self.record_exists(id) {
                return Err(Error::UnknownRelatedRecord {
                    position: i,
                    id: id.to_string(),
                });
            }
        }
        self.referenced_records.extend(related.iter().copied());
        announcement.id = self.next_id()?;
        announcement.sequence = self.next_announcement;
        self.next_announcement += 1;
        announcement.create_time = SystemTime::now();
        mutate(Mutation::AnnouncementCreated {
            announcement,
            request,
        })
    }

    fn delete_announcement(&mut self, id: Ulid) -> Result<Drafted> {
        if self.deleted_announcements.contains(&id) {
            return defer(Command::DeleteAnnouncement(id));
        }
        let Some(announcement) = self.state.announcements.get(&id) else {
            return Err(Error::not_found("announcement", id));
        };
        self.referenced_records
            .extend(announcement.related_trade_record_ids.iter().copied());
        self.deleted_announcements.insert(id);
        mutate(Mutation::AnnouncementDeleted(id))
    }

    /// Links the report's figures to the records that hold them, storing
    /// the ones that do not exist yet, then numbers the report.
    fn publish_export_report(
        &mut self,
        mut report: crate::domain::ExportReport,
        request: Option<super::RequestKey>,
    ) -> Result<Drafted> {
        let (current, baseline) = report.figures();
        let mut targets = [None, None];
        for (target, figure) in targets.iter_mut().zip([&current, &baseline]) {
            if let Some(figure) = figure {
                match self.key_target(&figure.key()) {
                    Ok(found) => *target = Some(found),
                    Err(()) => {
                        return defer(Command::PublishExportReport { report, request });
                    }
                }
            }
        }
        let now = SystemTime::now();
        report.id = self.next_id()?;
        report.sequence = self.next_report;
        self.next_report += 1;
        report.publish_time = now;
        let mut new_records: Vec<TradeRecord> = Vec::new();
        let mut links = [None, None];
        for ((link, target), figure) in links.iter_mut().zip(targets).zip([current, baseline]) {
            let Some(mut figure) = figure else { continue };
            let id = match target.flatten() {
                Some(id) => id,
                // Looked up again: the current figure may have just stored
                // the baseline's key.
                None => match self.new_keys.get(&figure.key()) {
                    Some(id) => *id,
                    None => {
                        figure.id = self.next_id()?;
                        figure.create_time = now;
                        self.created_records.insert(figure.id);
                        self.new_keys.insert(figure.key(), figure.id);
                        let id = figure.id;
                        new_records.push(figure);
                        id
                    }
                },
            };
            self.referenced_records.insert(id);
            *link = Some(id);
        }
        [report.trade_record_id, report.baseline_trade_record_id] = links;
        mutate(Mutation::ExportReportPublished {
            report,
            new_records,
            request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{mutation, record, report};
    use crate::store::{RequestKey, StoreConfig};

    fn deferred(drafted: Result<Drafted>) -> bool {
        matches!(drafted, Ok(Drafted::Defer(_)))
    }

    /// A state holding one stored record, and its id.
    fn state_with_record() -> (State, Ulid) {
        let mut state = State::new(&StoreConfig::default());
        let created = Draft::new(&state).execute(Command::CreateTradeRecords {
            records: vec![record(2022, 13_000_000)],
            request: None,
        });
        let (outcome, _) = state.apply(mutation(created));
        let Outcome::TradeRecords(stored) = outcome else {
            panic!("{outcome:?}")
        };
        (state, stored[0].id)
    }

    #[test]
    fn reports_of_one_group_number_in_order_and_share_new_figures() {
        let (state, stored) = state_with_record();
        let mut draft = Draft::new(&state);
        let first = mutation(draft.execute(Command::PublishExportReport {
            report: report(2023),
            request: None,
        }));
        let second = mutation(draft.execute(Command::PublishExportReport {
            report: report(2023),
            request: None,
        }));
        let (
            Mutation::ExportReportPublished {
                report: a,
                new_records: a_new,
                ..
            },
            Mutation::ExportReportPublished {
                report: b,
                new_records: b_new,
                ..
            },
        ) = (first, second)
        else {
            panic!("two publications")
        };
        assert_eq!((a.sequence, b.sequence), (1, 2));
        assert!(a.id < b.id, "ids grow within a group");
        // 2022 was stored before the group; 2023 is new with the first.
        assert_eq!(a.baseline_trade_record_id, Some(stored));
        assert_eq!(a_new.len(), 1);
        assert_eq!(a.trade_record_id, Some(a_new[0].id));
        assert!(
            b_new.is_empty(),
            "the second report links the first's record"
        );
        assert_eq!(b.trade_record_id, a.trade_record_id);
    }

    #[test]
    fn a_command_that_builds_on_a_deletion_of_its_group_is_deferred() {
        let (state, stored) = state_with_record();
        let mut draft = Draft::new(&state);
        mutation(draft.execute(Command::DeleteTradeRecord(stored)));
        assert!(deferred(draft.execute(Command::DeleteTradeRecord(stored))));
        // The report's baseline figure is the deleted record's key.
        assert!(deferred(draft.execute(Command::PublishExportReport {
            report: report(2023),
            request: None,
        })));
        assert!(deferred(draft.execute(Command::CreateTradeRecords {
            records: vec![record(2022, 1)],
            request: None,
        })));
        // Alone in a group, the same command is not deferred.
        assert!(!deferred(Draft::new(&state).execute(
            Command::PublishExportReport {
                report: report(2023),
                request: None,
            }
        )));
    }

    #[test]
    fn deleting_a_record_that_the_group_refers_to_is_deferred() {
        let (state, stored) = state_with_record();
        let mut draft = Draft::new(&state);
        mutation(draft.execute(Command::PublishExportReport {
            report: report(2023),
            request: None,
        }));
        assert!(deferred(draft.execute(Command::DeleteTradeRecord(stored))));
        // Without the report, the delete goes through.
        mutation(Draft::new(&state).execute(Command::DeleteTradeRecord(stored)));
    }

    #[test]
    fn a_request_id_used_twice_in_one_group_is_deferred_then_repeated() {
        let mut state = State::new(&StoreConfig::default());
        let request = || {
            Some(RequestKey {
                request_id: "r-1".into(),
                fingerprint: 7,
            })
        };
        let command = || Command::CreateTradeRecords {
            records: vec![record(2022, 13_000_000)],
            request: request(),
        };
        let mut draft = Draft::new(&state);
        let created = mutation(draft.execute(command()));
        assert!(deferred(draft.execute(command())));
        let (first, _) = state.apply(created);
        match Draft::new(&state).execute(command()) {
            Ok(Drafted::Repeat(again)) => assert_eq!(format!("{again:?}"), format!("{first:?}")),
            other => panic!("expected the first outcome, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_record_is_not_found_and_drafting_changes_nothing() {
        let (state, _) = state_with_record();
        let missing = Ulid::new();
        let mut draft = Draft::new(&state);
        match draft.execute(Command::DeleteTradeRecord(missing)) {
            Err(Error::NotFound { kind, .. }) => assert_eq!(kind, "trade record"),
            other => panic!("{other:?}"),
        }
        mutation(draft.execute(Command::PublishExportReport {
            report: report(2023),
            request: None,
        }));
        assert_eq!(state.records.len(), 1);
        assert_eq!(state.reports.next_sequence(), 1);
    }
}
