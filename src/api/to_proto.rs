//! Domain to wire: the one place domain values become protobuf messages.

use std::sync::Arc;
use std::time::SystemTime;

use chrono::{Datelike, NaiveDate};
use prost::Message;

use crate::domain::summary::{Breakdown, Bucket, Share, Summary, SummaryChange, Unallocated};
use crate::domain::{
    AnnouncedEvent, Announcement, AnnouncementKind, Bound, BoundedMoney, Calendar, CalendarPart,
    Due, ExportReport, Money, Period, PeriodSpec, Person, Quantity, Source, TradeRecord,
};
use crate::hub::SubscriptionEvent;
use crate::pb;
use crate::store::{Revision, Stored};

pub(crate) fn date(d: NaiveDate) -> pb::Date {
    pb::Date {
        year: d.year(),
        // chrono months and days are at most 12 and 31.
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

pub(crate) fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

fn bound(b: Bound) -> i32 {
    match b {
        Bound::Exact => pb::Bound::Exact,
        Bound::AtLeast => pb::Bound::AtLeast,
        Bound::AtMost => pb::Bound::AtMost,
        Bound::Approximate => pb::Bound::Approximate,
    }
    .into()
}

fn money(m: &Money) -> pb::Money {
    pb::Money {
        currency_code: m.currency_code().to_owned(),
        units: m.units,
        nanos: m.nanos,
    }
}

fn bounded_money(m: &BoundedMoney) -> pb::BoundedMoney {
    pb::BoundedMoney {
        value: Some(money(&m.money)),
        bound: bound(m.bound),
    }
}

fn quantity(q: &Quantity) -> pb::Quantity {
    pb::Quantity {
        amount: q.amount,
        unit: q.unit.clone(),
        bound: bound(q.bound),
    }
}

pub(crate) fn period(p: &Period) -> pb::Period {
    let spec = match p.spec {
        PeriodSpec::Range(r) => pb::period::Spec::DateRange(pb::DateRange {
            start: Some(date(r.start)),
            end: Some(date(r.end)),
        }),
        PeriodSpec::Calendar {
            calendar,
            year,
            part,
        } => pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
            calendar: match calendar {
                Calendar::Gregorian => pb::Calendar::Gregorian,
                Calendar::SolarHijri => pb::Calendar::SolarHijri,
            }
            .into(),
            year,
            part: match part {
                CalendarPart::Year => None,
                CalendarPart::Quarter(q) => Some(pb::calendar_period::Part::Quarter(q.into())),
                CalendarPart::Month(m) => Some(pb::calendar_period::Part::Month(m.into())),
            },
        }),
    };
    pb::Period {
        spec: Some(spec),
        start_date: Some(date(p.start())),
        end_date: Some(date(p.end())),
        label: p.label.clone(),
    }
}

fn person(p: &Person) -> pb::Person {
    pb::Person {
        name: p.name.clone(),
        role: p.role.clone(),
        organization: p.organization.clone(),
    }
}

fn source(s: &Source) -> pb::Source {
    pb::Source {
        organization: s.organization.clone(),
        outlet: s.outlet.clone(),
        speaker: s.speaker.as_deref().map(person),
        url: s.url.clone(),
        quote: s.quote.clone(),
        published_date: s.published_date.map(date),
    }
}

/// A stored record's `TradeRecord` encoding: made once, on first use, and
/// shared by every answer that carries the record.
pub(crate) fn encoded_trade_record(r: &Stored<TradeRecord>) -> bytes::Bytes {
    r.encoded(|r| trade_record(r).encode_to_vec().into())
}

pub(crate) fn trade_record(r: &TradeRecord) -> pb::TradeRecord {
    pb::TradeRecord {
        id: r.id.to_string(),
        exporter: r.exporter.as_str().to_owned(),
        importer: r.importer.as_str().to_owned(),
        hs_code: r.hs_code.as_str().to_owned(),
        commodity: r.commodity.clone(),
        period: Some(period(&r.period)),
        value: Some(bounded_money(&r.value)),
        quantity: r.quantity.as_ref().map(quantity),
        source: Some(source(&r.source)),
        create_time: Some(timestamp(r.create_time)),
        revision: i64::from(r.revision.max(1)),
        etag: etag(r),
    }
}

/// A record's etag: its revision, "r3".
pub(crate) fn etag(r: &TradeRecord) -> String {
    format!("r{}", r.revision.max(1))
}

/// A record's revisions on the wire.
pub(crate) fn revisions(history: &[Revision]) -> pb::ListTradeRecordRevisionsResponse {
    pb::ListTradeRecordRevisionsResponse {
        revisions: history
            .iter()
            .map(|r| {
                let Revision {
                    number,
                    time,
                    changed,
                    source: revision_source,
                    record,
                } = r;
                pb::TradeRecordRevision {
                    revision: i64::from(*number),
                    revise_time: Some(timestamp(*time)),
                    changed_fields: changed.clone(),
                    source: Some(source(revision_source)),
                    trade_record: Some(trade_record(record)),
                }
            })
            .collect(),
    }
}

fn announcement_kind(k: AnnouncementKind) -> i32 {
    match k {
        AnnouncementKind::Meeting => pb::AnnouncementKind::Meeting,
        AnnouncementKind::Statement => pb::AnnouncementKind::Statement,
        AnnouncementKind::Forecast => pb::AnnouncementKind::Forecast,
        AnnouncementKind::Exhibition => pb::AnnouncementKind::Exhibition,
        AnnouncementKind::Agreement => pb::AnnouncementKind::Agreement,
        AnnouncementKind::Other => pb::AnnouncementKind::Other,
    }
    .into()
}

fn announced_event(e: &AnnouncedEvent) -> pb::Event {
    pb::Event {
        name: e.name.clone(),
        location: e.location.clone(),
        start_date: e.start_date.map(date),
    }
}

pub(crate) fn announcement(a: &Announcement) -> pb::Announcement {
    pb::Announcement {
        id: a.id.to_string(),
        sequence: a.sequence,
        kind: announcement_kind(a.kind),
        headline: a.headline.clone(),
        body: a.body.clone(),
        countries: a.countries.iter().map(|c| c.as_str().to_owned()).collect(),
        organizations: a.organizations.clone(),
        people: a.people.iter().map(person).collect(),
        event: a.event.as_ref().map(announced_event),
        announced_date: a.announced_date.map(date),
        forecast: a.forecast.as_ref().map(|f| pb::Forecast {
            subject: f.subject.clone(),
            country: f.country.map(|c| c.as_str().to_owned()).unwrap_or_default(),
            target: Some(quantity(&f.target)),
            due: Some(match &f.due {
                Due::ByEndOf(p) => pb::forecast::Due::DuePeriod(period(p)),
                Due::ByDate(d) => pb::forecast::Due::DueDate(date(*d)),
            }),
            due_by: Some(date(f.due.due_by())),
        }),
        source: Some(source(&a.source)),
        related_trade_record_ids: a
            .related_trade_record_ids
            .iter()
            .map(ToString::to_string)
            .collect(),
        create_time: Some(timestamp(a.create_time)),
    }
}

pub(crate) fn export_report(r: &ExportReport) -> pb::ExportReport {
    pb::ExportReport {
        id: r.id.to_string(),
        sequence: r.sequence,
        publish_time: Some(timestamp(r.publish_time)),
        exporter: r.exporter.as_str().to_owned(),
        importer: r.importer.as_str().to_owned(),
        hs_code: r.hs_code.as_str().to_owned(),
        commodity: r.commodity.clone(),
        headline: r.headline.clone(),
        source: Some(source(&r.source)),
        period: Some(period(&r.period)),
        value: r.value.as_ref().map(bounded_money),
        baseline_period: r.baseline_period.as_ref().map(period),
        baseline_value: r.baseline_value.as_ref().map(bounded_money),
        change_percent: r.change.map(|c| c.percent),
        change_bound: r
            .change
            .map_or(pb::Bound::Unspecified.into(), |c| bound(c.bound)),
        trade_record_id: r.trade_record_id.map(|i| i.to_string()).unwrap_or_default(),
        baseline_trade_record_id: r
            .baseline_trade_record_id
            .map(|i| i.to_string())
            .unwrap_or_default(),
    }
}

/// A subscription event as the stream's `event` oneof, whichever stream:
/// `item` wraps an item, the other two wrap the markers.
fn subscription_event<T, E>(
    event: &SubscriptionEvent<T>,
    item: impl FnOnce(&T) -> E,
    caught_up: fn(pb::CaughtUp) -> E,
    heartbeat: fn(pb::Heartbeat) -> E,
) -> E {
    match event {
        SubscriptionEvent::Item(i) => item(i),
        SubscriptionEvent::CaughtUp(head) => caught_up(pb::CaughtUp {
            head_sequence: *head,
        }),
        SubscriptionEvent::Heartbeat(head) => heartbeat(pb::Heartbeat {
            head_sequence: *head,
        }),
    }
}

/// One message of a SubscribeExportReports stream.
pub(crate) fn report_event(
    event: &SubscriptionEvent<Stored<ExportReport>>,
) -> pb::SubscribeExportReportsResponse {
    use pb::subscribe_export_reports_response::Event;
    pb::SubscribeExportReportsResponse {
        event: Some(subscription_event(
            event,
            |r| Event::ExportReport(export_report(r)),
            Event::CaughtUp,
            Event::Heartbeat,
        )),
    }
}

/// One message of a WatchAnnouncements stream.
pub(crate) fn announcement_event(
    event: &SubscriptionEvent<Announcement>,
) -> pb::WatchAnnouncementsResponse {
    use pb::watch_announcements_response::Event;
    pb::WatchAnnouncementsResponse {
        event: Some(subscription_event(
            event,
            |a| Event::Announcement(announcement(a)),
            Event::CaughtUp,
            Event::Heartbeat,
        )),
    }
}

/// A published report's SubscribeExportReports message, encoded once, on
/// first delivery, and shared by every subscriber it reaches.
pub(crate) fn encoded_report_event(report: &Arc<Stored<ExportReport>>) -> bytes::Bytes {
    report.encoded(|_| {
        report_event(&SubscriptionEvent::Item(Arc::clone(report)))
            .encode_to_vec()
            .into()
    })
}

fn summary_change(c: &SummaryChange) -> pb::TradeChange {
    let SummaryChange { change, stated_by } = c;
    pb::TradeChange {
        percent: change.percent,
        bound: bound(change.bound),
        stated: stated_by.is_some(),
        export_report_id: stated_by.map(|id| id.to_string()).unwrap_or_default(),
    }
}

/// A summary on the wire.
pub(crate) fn summary(s: &Summary) -> pb::SummarizeTradeResponse {
    let Summary { buckets, currency } = s;
    pb::SummarizeTradeResponse {
        buckets: buckets
            .iter()
            .map(|b| {
                let Bucket {
                    period: bucket_period,
                    total,
                    total_high,
                    record_count,
                    sources,
                    change_from_previous,
                    change_from_year_earlier,
                    unallocated,
                } = b;
                pb::TradeSummaryBucket {
                    period: Some(period(bucket_period)),
                    total: total.as_ref().map(bounded_money),
                    total_high: total_high.as_ref().map(bounded_money),
                    record_count: *record_count,
                    sources: sources.clone(),
                    change_from_previous: change_from_previous.as_ref().map(summary_change),
                    change_from_year_earlier: change_from_year_earlier.as_ref().map(summary_change),
                    unallocated: unallocated.listed.iter().map(unallocated_record).collect(),
                    unallocated_count: unallocated.count,
                }
            })
            .collect(),
        currency_code: currency.map(|c| c.code().to_owned()).unwrap_or_default(),
    }
}

fn unallocated_record(u: &Unallocated) -> pb::UnallocatedTradeRecord {
    let Unallocated {
        record,
        period: record_period,
        reason,
    } = u;
    pb::UnallocatedTradeRecord {
        trade_record_id: record.to_string(),
        period: Some(period(record_period)),
        reason: reason.clone(),
    }
}

fn share(s: &Share) -> pb::TradeShare {
    let Share {
        key,
        value,
        percent,
    } = s;
    pb::TradeShare {
        key: key.clone(),
        value: Some(bounded_money(value)),
        percent: *percent,
    }
}

/// A breakdown on the wire.
pub(crate) fn breakdown(b: &Breakdown) -> pb::BreakdownTradeResponse {
    let Breakdown {
        period: breakdown_period,
        total,
        shares,
        others,
        currency,
        unallocated,
    } = b;
    pb::BreakdownTradeResponse {
        period: Some(period(breakdown_period)),
        total: total.as_ref().map(bounded_money),
        shares: shares.iter().map(share).collect(),
        others: others.as_ref().map(share),
        currency_code: currency.map(|c| c.code().to_owned()).unwrap_or_default(),
        unallocated: unallocated.listed.iter().map(unallocated_record).collect(),
        unallocated_count: unallocated.count,
    }
}
