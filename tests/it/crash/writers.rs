//! The crash test's writers: every kind of write, each remembered with
//! what was acknowledged, so that a restart can be checked against it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::common::*;
use tonic::transport::Channel;
use tradewire::pb;
use tradewire::pb::announcement_service_client::AnnouncementServiceClient;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::trade_service_client::TradeServiceClient;

use super::BATCH;

/// A write with a request id and its acknowledged answer.
pub(super) enum Retry {
    Create(pb::CreateTradeRecordRequest, pb::TradeRecord),
    Batch(pb::BatchCreateTradeRecordsRequest, Vec<pb::TradeRecord>),
    Publish(pb::PublishExportReportRequest, pb::ExportReport),
    Announce(pb::CreateAnnouncementRequest, pb::Announcement),
}

#[derive(Default)]
pub(super) struct Acked {
    pub(super) retries: Vec<Retry>,
    /// The last acknowledged revision of each record made by Create.
    pub(super) records: HashMap<String, pb::TradeRecord>,
    pub(super) deleted_records: HashSet<String>,
    pub(super) batches: Vec<Vec<String>>,
    pub(super) reports: Vec<pb::ExportReport>,
    pub(super) announcements: HashMap<String, pb::Announcement>,
    pub(super) deleted_announcements: HashSet<String>,
    /// Ids an update or delete that was not acknowledged may have changed.
    pub(super) uncertain: HashSet<String>,
}

impl Acked {
    pub(super) fn extend(&mut self, other: Acked) {
        self.retries.extend(other.retries);
        self.records.extend(other.records);
        self.deleted_records.extend(other.deleted_records);
        self.batches.extend(other.batches);
        self.reports.extend(other.reports);
        self.announcements.extend(other.announcements);
        self.deleted_announcements
            .extend(other.deleted_announcements);
        self.uncertain.extend(other.uncertain);
    }
}

struct Writer {
    trade: TradeServiceClient<Channel>,
    reports: ExportReportServiceClient<Channel>,
    announcements: AnnouncementServiceClient<Channel>,
    acked: Arc<Mutex<Acked>>,
    /// This writer's live records (their latest revision) and announcements.
    records: Vec<pb::TradeRecord>,
    announced: Vec<String>,
}

impl Writer {
    fn ack(&self, record: impl FnOnce(&mut Acked)) {
        record(&mut self.acked.lock().unwrap());
    }

    /// One write of kind `n % 7`; false once a write is not acknowledged.
    async fn write(&mut self, round: usize, writer: usize, n: usize) -> bool {
        let year_ = 1000 + ((writer * 2_000 + n) % 8_000) as i32;
        let request_id = format!("{round}-{writer}-{n}");
        match n % 7 {
            0 => {
                let request = pb::PublishExportReportRequest {
                    export_report: Some(pb::ExportReport {
                        period: Some(year(pb::Calendar::Gregorian, year_ + 1)),
                        value: Some(usd(66_000_000, pb::Bound::AtLeast)),
                        baseline_period: Some(year(pb::Calendar::Gregorian, year_)),
                        baseline_value: Some(usd(13_000_000, pb::Bound::Exact)),
                        ..report("IRN", "RUS", "8708", &format!("w{writer} #{n}"))
                    }),
                    request_id,
                };
                let Ok(answer) = self.reports.publish_export_report(request.clone()).await else {
                    return false;
                };
                let report = answer.into_inner().export_report.unwrap();
                self.ack(|a| {
                    a.reports.push(report.clone());
                    a.retries.push(Retry::Publish(request, report));
                });
            }
            1 => {
                let tag = format!("batch-{round}-{writer}-{n}");
                let requests = (0..BATCH as i32)
                    .map(|i| {
                        let mut r = record("IRN", "TUR", "2709", year_ + i, 1);
                        r.commodity = tag.clone();
                        create(r)
                    })
                    .collect();
                let request = pb::BatchCreateTradeRecordsRequest {
                    requests,
                    request_id,
                };
                let Ok(answer) = self.trade.batch_create_trade_records(request.clone()).await
                else {
                    return false;
                };
                let created = answer.into_inner().trade_records;
                self.ack(|a| {
                    a.batches
                        .push(created.iter().map(|r| r.id.clone()).collect());
                    a.retries.push(Retry::Batch(request, created));
                });
            }
            2 => {
                let request = pb::CreateTradeRecordRequest {
                    trade_record: Some(record("IRN", "ARM", "8703", year_, 5)),
                    request_id,
                };
                let Ok(answer) = self.trade.create_trade_record(request.clone()).await else {
                    return false;
                };
                let created = answer.into_inner().trade_record.unwrap();
                self.records.push(created.clone());
                self.ack(|a| {
                    a.records.insert(created.id.clone(), created.clone());
                    a.retries.push(Retry::Create(request, created));
                });
            }
            3 => {
                let Some(current) = self.records.last_mut() else {
                    return true;
                };
                let mut next = current.clone();
                next.value = Some(usd(5 + current.revision, pb::Bound::Exact));
                let request = pb::UpdateTradeRecordRequest {
                    trade_record: Some(next),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["value".into()],
                    }),
                    etag: current.etag.clone(),
                    revision_source: None,
                };
                let id = current.id.clone();
                let Ok(answer) = self.trade.update_trade_record(request).await else {
                    self.ack(|a| {
                        a.uncertain.insert(id);
                    });
                    return false;
                };
                let revised = answer.into_inner().trade_record.unwrap();
                *current = revised.clone();
                self.ack(|a| {
                    a.records.insert(id, revised);
                });
            }
            4 => {
                if self.records.len() < 2 {
                    return true;
                }
                let id = self.records.remove(0).id;
                let request = pb::DeleteTradeRecordRequest { id: id.clone() };
                if self.trade.delete_trade_record(request).await.is_err() {
                    self.ack(|a| {
                        a.uncertain.insert(id);
                    });
                    return false;
                }
                self.ack(|a| {
                    a.records.remove(&id);
                    a.deleted_records.insert(id);
                });
            }
            5 => {
                let request = pb::CreateAnnouncementRequest {
                    announcement: Some(pb::Announcement {
                        kind: pb::AnnouncementKind::Statement.into(),
                        headline: format!("w{writer} #{n}"),
                        source: Some(source("IRNA")),
                        ..Default::default()
                    }),
                    request_id,
                };
                let Ok(answer) = self
                    .announcements
                    .create_announcement(request.clone())
                    .await
                else {
                    return false;
                };
                let created = answer.into_inner().announcement.unwrap();
                self.announced.push(created.id.clone());
                self.ack(|a| {
                    a.announcements.insert(created.id.clone(), created.clone());
                    a.retries.push(Retry::Announce(request, created));
                });
            }
            _ => {
                if self.announced.len() < 2 {
                    return true;
                }
                let id = self.announced.remove(0);
                let request = pb::DeleteAnnouncementRequest { id: id.clone() };
                if self
                    .announcements
                    .delete_announcement(request)
                    .await
                    .is_err()
                {
                    self.ack(|a| {
                        a.uncertain.insert(id);
                    });
                    return false;
                }
                self.ack(|a| {
                    a.announcements.remove(&id);
                    a.deleted_announcements.insert(id);
                });
            }
        }
        true
    }
}

pub(super) async fn write_until_killed(
    channel: Channel,
    round: usize,
    writer: usize,
    acked: Arc<Mutex<Acked>>,
) {
    let mut w = Writer {
        trade: TradeServiceClient::new(channel.clone()),
        reports: ExportReportServiceClient::new(channel.clone()),
        announcements: AnnouncementServiceClient::new(channel),
        acked,
        records: Vec::new(),
        announced: Vec::new(),
    };
    for n in 0..2_000 {
        if !w.write(round, writer, n).await {
            return;
        }
    }
}
