//! Wire to domain: every request field is validated here, and nowhere else.
//!
//! Conversions record each problem with the path of its field
//! ("trade_record.period.calendar_period.quarter") and keep going, so one
//! `INVALID_ARGUMENT` lists every violation of a request.

use std::time::Duration;

use chrono::NaiveDate;
use ulid::Ulid;

use crate::domain::money::MoneyError;
use crate::domain::period::PeriodError;
use crate::domain::{
    Announcement, AnnouncementFilter, AnnouncementKind, Bound, BoundedMoney, Calendar,
    CalendarPart, Change, CountryCode, DateRange, Due, Event, ExportReport, Forecast, HsCode,
    HsPrefix, Money, Period, Person, Quantity, Source, TradeFilter, TradeRecord,
};
use crate::error::{Error, FieldViolation, Result};
use crate::hub::{self, Start};
use crate::pb;

/// Caps on request sizes, so one request cannot take unbounded memory.
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_HEADLINE_LEN: usize = 500;
pub const MAX_BODY_LEN: usize = 20_000;
pub const MAX_QUOTE_LEN: usize = 5_000;
pub const MAX_URL_LEN: usize = 2_000;
pub const MAX_LIST_LEN: usize = 50;
pub const MAX_RELATED_IDS: usize = 100;
pub const MAX_BATCH: usize = 1_000;
pub const MAX_REQUEST_ID_LEN: usize = 128;
pub const MAX_TEXT_FILTER_LEN: usize = 200;
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1_000;

/// Collects field violations while a request is converted.
#[derive(Debug, Default)]
pub struct Check {
    violations: Vec<FieldViolation>,
}

impl Check {
    pub fn fail(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    fn ok<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.fail(field, e)).ok()
    }

    fn required<'a, T>(&mut self, field: &str, value: Option<&'a T>) -> Option<&'a T> {
        if value.is_none() {
            self.fail(field, "is required");
        }
        value
    }

    fn text(&mut self, field: &str, value: &str, max: usize, required: bool) -> String {
        if required && value.trim().is_empty() {
            self.fail(field, "is required");
        }
        let chars = value.chars().count();
        if chars > max {
            self.fail(
                field,
                format!("is {chars} characters long; the limit is {max}"),
            );
        }
        value.to_owned()
    }

    fn list_len(&mut self, field: &str, len: usize, max: usize) {
        if len > max {
            self.fail(field, format!("has {len} entries; the limit is {max}"));
        }
    }

    /// The value if no violation was recorded, else `INVALID_ARGUMENT`.
    pub fn finish<T>(self, value: Option<T>) -> Result<T> {
        match value {
            Some(value) if self.violations.is_empty() => Ok(value),
            _ if !self.violations.is_empty() => Err(Error::InvalidArgument(self.violations)),
            _ => Err(Error::Internal(
                "conversion failed without a violation".into(),
            )),
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

pub fn id(field: &str, value: &str) -> Result<Ulid> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    Ulid::from_string(value)
        .map_err(|_| Error::invalid(field, format!("{value:?} is not a valid id")))
}

pub fn request_id(check: &mut Check, field: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    check.text(field, value, MAX_REQUEST_ID_LEN, false);
    if value.chars().any(char::is_control) {
        check.fail(field, "must not contain control characters");
    }
    Some(value.to_owned())
}

pub fn page_size(value: i32) -> Result<usize> {
    match value {
        v if v < 0 => Err(Error::invalid("page_size", format!("{v} is negative"))),
        0 => Ok(DEFAULT_PAGE_SIZE),
        v => Ok(usize::try_from(v).map_or(MAX_PAGE_SIZE, |v| v.min(MAX_PAGE_SIZE))),
    }
}

fn country(check: &mut Check, field: &str, value: &str, required: bool) -> Option<CountryCode> {
    if value.is_empty() {
        if required {
            check.fail(field, "is required");
        }
        return None;
    }
    check.ok(field, CountryCode::parse(value))
}

fn hs_code(check: &mut Check, field: &str, value: &str) -> Option<HsCode> {
    if value.is_empty() {
        check.fail(field, "is required");
        return None;
    }
    check.ok(field, HsCode::parse(value))
}

pub fn date(check: &mut Check, field: &str, value: &pb::Date) -> Option<NaiveDate> {
    let parsed = u32::try_from(value.month)
        .ok()
        .zip(u32::try_from(value.day).ok())
        .filter(|_| (1..=9999).contains(&value.year))
        .and_then(|(m, d)| NaiveDate::from_ymd_opt(value.year, m, d));
    if parsed.is_none() {
        check.fail(
            field,
            format!(
                "{:04}-{:02}-{:02} is not a real date between 0001-01-01 and 9999-12-31",
                value.year, value.month, value.day
            ),
        );
    }
    parsed
}

fn optional_date(check: &mut Check, field: &str, value: Option<&pb::Date>) -> Option<NaiveDate> {
    value.and_then(|d| date(check, field, d))
}

pub fn date_range(check: &mut Check, path: &str, value: &pb::DateRange) -> Option<DateRange> {
    let start = check.required(&join(path, "start"), value.start.as_ref());
    let start = start.and_then(|d| date(check, &join(path, "start"), d));
    let end = check.required(&join(path, "end"), value.end.as_ref());
    let end = end.and_then(|d| date(check, &join(path, "end"), d));
    let (start, end) = start.zip(end)?;
    check.ok(&join(path, "end"), DateRange::new(start, end))
}

fn bound(check: &mut Check, field: &str, value: i32) -> Bound {
    match pb::Bound::try_from(value) {
        Ok(pb::Bound::Unspecified | pb::Bound::Exact) => Bound::Exact,
        Ok(pb::Bound::AtLeast) => Bound::AtLeast,
        Ok(pb::Bound::AtMost) => Bound::AtMost,
        Ok(pb::Bound::Approximate) => Bound::Approximate,
        Err(_) => {
            check.fail(field, format!("{value} is not a Bound"));
            Bound::Exact
        }
    }
}

fn money(check: &mut Check, path: &str, value: &pb::Money) -> Option<Money> {
    match Money::new(&value.currency_code, value.units, value.nanos) {
        Ok(money) => Some(money),
        Err(MoneyError::Currency(e)) => {
            check.fail(join(path, "currency_code"), e);
            None
        }
        Err(MoneyError::Nanos(e)) => {
            check.fail(join(path, "nanos"), e);
            None
        }
    }
}

/// A required, non-negative money figure with its bound.
fn bounded_money(check: &mut Check, path: &str, value: &pb::BoundedMoney) -> Option<BoundedMoney> {
    let b = bound(check, &join(path, "bound"), value.bound);
    let field = join(path, "value");
    let money = check.required(&field, value.value.as_ref())?;
    let money = self::money(check, &field, money)?;
    if money.is_negative() {
        check.fail(join(&field, "units"), "a traded value must not be negative");
    }
    Some(BoundedMoney { money, bound: b })
}

fn quantity(check: &mut Check, path: &str, value: &pb::Quantity) -> Option<Quantity> {
    if !value.amount.is_finite() || value.amount < 0.0 {
        check.fail(
            join(path, "amount"),
            format!("{} is not a finite non-negative number", value.amount),
        );
    }
    let unit = check.text(&join(path, "unit"), &value.unit, MAX_NAME_LEN, true);
    let b = bound(check, &join(path, "bound"), value.bound);
    Some(Quantity {
        amount: value.amount,
        unit,
        bound: b,
    })
}

pub fn period(check: &mut Check, path: &str, value: &pb::Period) -> Option<Period> {
    use pb::period::Spec;
    match &value.spec {
        None => {
            check.fail(join(path, "spec"), "set calendar_period or date_range");
            None
        }
        Some(Spec::DateRange(range)) => {
            date_range(check, &join(path, "date_range"), range).map(Period::from_range)
        }
        Some(Spec::CalendarPeriod(cp)) => {
            let path = join(path, "calendar_period");
            let calendar = match pb::Calendar::try_from(cp.calendar) {
                Ok(pb::Calendar::Unspecified | pb::Calendar::Gregorian) => Calendar::Gregorian,
                Ok(pb::Calendar::SolarHijri) => Calendar::SolarHijri,
                Err(_) => {
                    check.fail(
                        join(&path, "calendar"),
                        format!("{} is not a Calendar", cp.calendar),
                    );
                    return None;
                }
            };
            let small = |n: i32| u8::try_from(n).unwrap_or(u8::MAX);
            let part = match cp.part {
                None => CalendarPart::Year,
                Some(pb::calendar_period::Part::Quarter(q)) => CalendarPart::Quarter(small(q)),
                Some(pb::calendar_period::Part::Month(m)) => CalendarPart::Month(small(m)),
            };
            match Period::from_calendar(calendar, cp.year, part) {
                Ok(period) => Some(period),
                Err(PeriodError::Year(e)) => {
                    check.fail(join(&path, "year"), e);
                    None
                }
                Err(PeriodError::Quarter(_)) => {
                    check.fail(
                        join(&path, "quarter"),
                        format!("{} is not a quarter (1 to 4)", quarter_of(cp)),
                    );
                    None
                }
                Err(PeriodError::Month(_)) => {
                    check.fail(
                        join(&path, "month"),
                        format!("{} is not a month (1 to 12)", month_of(cp)),
                    );
                    None
                }
            }
        }
    }
}

fn quarter_of(cp: &pb::CalendarPeriod) -> i32 {
    match cp.part {
        Some(pb::calendar_period::Part::Quarter(q)) => q,
        _ => 0,
    }
}

fn month_of(cp: &pb::CalendarPeriod) -> i32 {
    match cp.part {
        Some(pb::calendar_period::Part::Month(m)) => m,
        _ => 0,
    }
}

fn required_period(check: &mut Check, field: &str, value: Option<&pb::Period>) -> Option<Period> {
    check
        .required(field, value)
        .and_then(|p| period(check, field, p))
}

fn person(check: &mut Check, path: &str, value: &pb::Person) -> Person {
    Person {
        name: check.text(&join(path, "name"), &value.name, MAX_NAME_LEN, true),
        role: check.text(&join(path, "role"), &value.role, MAX_NAME_LEN, false),
        organization: check.text(
            &join(path, "organization"),
            &value.organization,
            MAX_NAME_LEN,
            false,
        ),
    }
}

fn source(check: &mut Check, path: &str, value: Option<&pb::Source>) -> Option<Source> {
    let value = check.required(path, value)?;
    if value.organization.trim().is_empty() && value.outlet.trim().is_empty() {
        check.fail(
            join(path, "organization"),
            "set an organization or an outlet",
        );
    }
    let url = check.text(&join(path, "url"), &value.url, MAX_URL_LEN, false);
    if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
        check.fail(join(path, "url"), "must be an http or https URL");
    }
    Some(Source {
        organization: check.text(
            &join(path, "organization"),
            &value.organization,
            MAX_NAME_LEN,
            false,
        ),
        outlet: check.text(&join(path, "outlet"), &value.outlet, MAX_NAME_LEN, false),
        speaker: value
            .speaker
            .as_ref()
            .map(|p| person(check, &join(path, "speaker"), p)),
        url,
        quote: check.text(&join(path, "quote"), &value.quote, MAX_QUOTE_LEN, false),
        published_date: optional_date(
            check,
            &join(path, "published_date"),
            value.published_date.as_ref(),
        ),
    })
}

/// A trade record to store; id and create_time are left for the store.
pub fn trade_record(
    check: &mut Check,
    path: &str,
    value: Option<&pb::TradeRecord>,
) -> Option<TradeRecord> {
    let value = check.required(path, value)?;
    let exporter = country(check, &join(path, "exporter"), &value.exporter, true);
    let importer = country(check, &join(path, "importer"), &value.importer, true);
    if exporter.is_some() && exporter == importer {
        check.fail(join(path, "importer"), "must differ from exporter");
    }
    let hs_code = hs_code(check, &join(path, "hs_code"), &value.hs_code);
    let commodity = check.text(
        &join(path, "commodity"),
        &value.commodity,
        MAX_NAME_LEN,
        false,
    );
    let period = required_period(check, &join(path, "period"), value.period.as_ref());
    let money_field = join(path, "value");
    let money = check
        .required(&money_field, value.value.as_ref())
        .and_then(|v| bounded_money(check, &money_field, v));
    let quantity = value
        .quantity
        .as_ref()
        .and_then(|q| quantity(check, &join(path, "quantity"), q));
    let source = source(check, &join(path, "source"), value.source.as_ref());
    Some(TradeRecord {
        id: Ulid::nil(),
        create_time: std::time::SystemTime::UNIX_EPOCH,
        exporter: exporter?,
        importer: importer?,
        hs_code: hs_code?,
        commodity,
        period: period?,
        value: money?,
        quantity,
        source: source?,
        encoded: Default::default(),
    })
}

fn announcement_kind(
    check: &mut Check,
    field: &str,
    value: i32,
    required: bool,
) -> Option<AnnouncementKind> {
    match pb::AnnouncementKind::try_from(value) {
        Ok(pb::AnnouncementKind::Unspecified) => {
            if required {
                check.fail(field, "is required");
            }
            None
        }
        Ok(pb::AnnouncementKind::Meeting) => Some(AnnouncementKind::Meeting),
        Ok(pb::AnnouncementKind::Statement) => Some(AnnouncementKind::Statement),
        Ok(pb::AnnouncementKind::Forecast) => Some(AnnouncementKind::Forecast),
        Ok(pb::AnnouncementKind::Exhibition) => Some(AnnouncementKind::Exhibition),
        Ok(pb::AnnouncementKind::Agreement) => Some(AnnouncementKind::Agreement),
        Ok(pb::AnnouncementKind::Other) => Some(AnnouncementKind::Other),
        Err(_) => {
            check.fail(field, format!("{value} is not an AnnouncementKind"));
            None
        }
    }
}

fn forecast(check: &mut Check, path: &str, value: &pb::Forecast) -> Option<Forecast> {
    let subject = check.text(&join(path, "subject"), &value.subject, MAX_NAME_LEN, true);
    let country = country(check, &join(path, "country"), &value.country, false);
    let target = check
        .required(&join(path, "target"), value.target.as_ref())
        .and_then(|q| quantity(check, &join(path, "target"), q));
    let due = match &value.due {
        None => {
            check.fail(join(path, "due"), "set due_period or due_date");
            None
        }
        Some(pb::forecast::Due::DuePeriod(p)) => {
            period(check, &join(path, "due_period"), p).map(Due::ByEndOf)
        }
        Some(pb::forecast::Due::DueDate(d)) => {
            date(check, &join(path, "due_date"), d).map(Due::ByDate)
        }
    };
    Some(Forecast {
        subject,
        country,
        target: target?,
        due: due?,
    })
}

/// An announcement to store; id, sequence and create_time are left for the
/// store, which also checks that related trade records exist.
pub fn announcement(
    check: &mut Check,
    path: &str,
    value: Option<&pb::Announcement>,
) -> Option<Announcement> {
    let value = check.required(path, value)?;
    let kind = announcement_kind(check, &join(path, "kind"), value.kind, true);
    let headline = check.text(
        &join(path, "headline"),
        &value.headline,
        MAX_HEADLINE_LEN,
        true,
    );
    let body = check.text(&join(path, "body"), &value.body, MAX_BODY_LEN, false);
    check.list_len(
        &join(path, "countries"),
        value.countries.len(),
        MAX_LIST_LEN,
    );
    let countries: Vec<CountryCode> = value
        .countries
        .iter()
        .enumerate()
        .filter_map(|(i, c)| country(check, &format!("{}[{i}]", join(path, "countries")), c, true))
        .collect();
    check.list_len(
        &join(path, "organizations"),
        value.organizations.len(),
        MAX_LIST_LEN,
    );
    let organizations = value
        .organizations
        .iter()
        .enumerate()
        .map(|(i, o)| {
            check.text(
                &format!("{}[{i}]", join(path, "organizations")),
                o,
                MAX_NAME_LEN,
                true,
            )
        })
        .collect();
    check.list_len(&join(path, "people"), value.people.len(), MAX_LIST_LEN);
    let people = value
        .people
        .iter()
        .enumerate()
        .map(|(i, p)| person(check, &format!("{}[{i}]", join(path, "people")), p))
        .collect();
    let event = value.event.as_ref().map(|e| {
        let path = join(path, "event");
        Event {
            name: check.text(&join(&path, "name"), &e.name, MAX_NAME_LEN, true),
            location: check.text(&join(&path, "location"), &e.location, MAX_NAME_LEN, false),
            start_date: optional_date(check, &join(&path, "start_date"), e.start_date.as_ref()),
        }
    });
    let announced_date = optional_date(
        check,
        &join(path, "announced_date"),
        value.announced_date.as_ref(),
    );
    let forecast = value
        .forecast
        .as_ref()
        .and_then(|f| forecast(check, &join(path, "forecast"), f));
    let source = source(check, &join(path, "source"), value.source.as_ref());
    check.list_len(
        &join(path, "related_trade_record_ids"),
        value.related_trade_record_ids.len(),
        MAX_RELATED_IDS,
    );
    let related_trade_record_ids = value
        .related_trade_record_ids
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            let field = format!("{}[{i}]", join(path, "related_trade_record_ids"));
            id(&field, raw).map_err(|e| absorb(check, e)).ok()
        })
        .collect();
    Some(Announcement {
        id: Ulid::nil(),
        sequence: 0,
        create_time: std::time::SystemTime::UNIX_EPOCH,
        kind: kind?,
        headline,
        body,
        countries,
        organizations,
        people,
        event,
        announced_date,
        forecast,
        source: source?,
        related_trade_record_ids,
    })
}

fn absorb(check: &mut Check, error: Error) {
    match error {
        Error::InvalidArgument(violations) => check.violations.extend(violations),
        other => check.fail("", other.to_string()),
    }
}

/// An export report to publish; the change is computed here when both
/// values are given.
pub fn export_report(
    check: &mut Check,
    path: &str,
    value: Option<&pb::ExportReport>,
) -> Option<ExportReport> {
    let value = check.required(path, value)?;
    let exporter = country(check, &join(path, "exporter"), &value.exporter, true);
    let importer = country(check, &join(path, "importer"), &value.importer, true);
    if exporter.is_some() && exporter == importer {
        check.fail(join(path, "importer"), "must differ from exporter");
    }
    let hs_code = hs_code(check, &join(path, "hs_code"), &value.hs_code);
    let commodity = check.text(
        &join(path, "commodity"),
        &value.commodity,
        MAX_NAME_LEN,
        false,
    );
    let headline = check.text(
        &join(path, "headline"),
        &value.headline,
        MAX_HEADLINE_LEN,
        true,
    );
    let source = source(check, &join(path, "source"), value.source.as_ref());
    let reported = required_period(check, &join(path, "period"), value.period.as_ref());
    let current = value
        .value
        .as_ref()
        .and_then(|v| bounded_money(check, &join(path, "value"), v));
    let baseline_period = value
        .baseline_period
        .as_ref()
        .and_then(|p| period(check, &join(path, "baseline_period"), p));
    let baseline_value = value
        .baseline_value
        .as_ref()
        .and_then(|v| bounded_money(check, &join(path, "baseline_value"), v));
    if value.baseline_value.is_some() && value.baseline_period.is_none() {
        check.fail(
            join(path, "baseline_period"),
            "is required with baseline_value",
        );
    }
    if let (Some(p), Some(b)) = (&reported, &baseline_period)
        && p.range == b.range
    {
        check.fail(join(path, "baseline_period"), "must differ from period");
    }
    let change = match (&current, &baseline_value) {
        (Some(v), Some(b)) => {
            if v.money.currency != b.money.currency {
                check.fail(
                    join(path, "baseline_value.value.currency_code"),
                    "must match the currency of value",
                );
            }
            Change::between(v, b)
        }
        _ => match value.change_percent {
            None => None,
            Some(_) if value.baseline_period.is_none() => {
                check.fail(
                    join(path, "baseline_period"),
                    "is required with change_percent",
                );
                None
            }
            Some(p) if !p.is_finite() || p < -100.0 => {
                check.fail(
                    join(path, "change_percent"),
                    format!("{p} is not a finite change of at least -100"),
                );
                None
            }
            Some(p) => Some(Change {
                percent: p,
                bound: bound(check, &join(path, "change_bound"), value.change_bound),
            }),
        },
    };
    Some(ExportReport {
        id: Ulid::nil(),
        sequence: 0,
        publish_time: std::time::SystemTime::UNIX_EPOCH,
        exporter: exporter?,
        importer: importer?,
        hs_code: hs_code?,
        commodity,
        headline,
        source: source?,
        period: reported?,
        value: current,
        baseline_period,
        baseline_value,
        change,
        trade_record_id: None,
        baseline_trade_record_id: None,
        encoded: Default::default(),
    })
}

pub fn trade_filter(check: &mut Check, path: &str, value: Option<&pb::TradeFilter>) -> TradeFilter {
    let Some(value) = value else {
        return TradeFilter::default();
    };
    TradeFilter {
        exporter: country(check, &join(path, "exporter"), &value.exporter, false),
        importer: country(check, &join(path, "importer"), &value.importer, false),
        hs_prefix: if value.hs_prefix.is_empty() {
            None
        } else {
            check.ok(&join(path, "hs_prefix"), HsPrefix::parse(&value.hs_prefix))
        },
        period_overlaps: value
            .period_overlaps
            .as_ref()
            .and_then(|r| date_range(check, &join(path, "period_overlaps"), r)),
    }
}

pub fn announcement_filter(
    check: &mut Check,
    path: &str,
    value: Option<&pb::AnnouncementFilter>,
) -> AnnouncementFilter {
    let Some(value) = value else {
        return AnnouncementFilter::default();
    };
    let lowered = |check: &mut Check, field: &str, v: &str, max: usize| {
        (!v.is_empty()).then(|| check.text(&join(path, field), v, max, false).to_lowercase())
    };
    AnnouncementFilter {
        kind: announcement_kind(check, &join(path, "kind"), value.kind, false),
        country: country(check, &join(path, "country"), &value.country, false),
        organization: lowered(check, "organization", &value.organization, MAX_NAME_LEN),
        person: lowered(check, "person", &value.person, MAX_NAME_LEN),
        text: lowered(check, "text", &value.text, MAX_TEXT_FILTER_LEN),
        announced_within: value
            .announced_within
            .as_ref()
            .and_then(|r| date_range(check, &join(path, "announced_within"), r)),
    }
}

/// The start position of a subscription; absent means from now.
pub fn start(after_sequence: Option<u64>) -> Start {
    after_sequence.map_or(Start::FromNow, Start::AfterSequence)
}

pub fn heartbeat(
    check: &mut Check,
    field: &str,
    value: Option<&prost_types::Duration>,
) -> Option<Duration> {
    let value = value?;
    let interval = u64::try_from(value.seconds)
        .ok()
        .zip(
            u32::try_from(value.nanos)
                .ok()
                .filter(|n| *n < 1_000_000_000),
        )
        .map(|(s, n)| Duration::new(s, n));
    match interval {
        Some(d) if (hub::MIN_HEARTBEAT..=hub::MAX_HEARTBEAT).contains(&d) => Some(d),
        _ => {
            check.fail(
                field,
                format!(
                    "must be between {:?} and {:?}",
                    hub::MIN_HEARTBEAT,
                    hub::MAX_HEARTBEAT
                ),
            );
            None
        }
    }
}
