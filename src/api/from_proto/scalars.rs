//! The shared building blocks of requests: ids, request ids, page sizes,
//! countries, HS codes, dates, money, quantities, periods, people, sources
//! and heartbeat intervals.

use std::time::Duration;

use chrono::NaiveDate;
use ulid::Ulid;

use super::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::{MAX_NAME_LEN, MAX_QUOTE_LEN, MAX_REQUEST_ID_LEN, MAX_URL_LEN, Violations, join};
use crate::domain::money::MoneyError;
use crate::domain::period::PeriodError;
use crate::domain::quote;
use crate::domain::{
    Bound, BoundedMoney, Calendar, CalendarPart, CountryCode, DateRange, HsCode, Money, Period,
    Person, Quantity, Source,
};
use crate::error::{Error, Result};
use crate::hub::{MAX_HEARTBEAT, MIN_HEARTBEAT};
use crate::pb;

/// A required id.
pub(super) fn id(field: &str, value: &str) -> Result<Ulid> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    Ulid::from_string(value)
        .map_err(|_| Error::invalid(field, format!("{} is not a valid id", quote(value))))
}

/// An optional request id; empty means none.
pub(super) fn request_id(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    // One line, no control characters: it may be logged.
    Some(v.text(field, value, MAX_REQUEST_ID_LEN, false))
}

/// A page size: 0 means the default, and large ones are capped (AIP-158).
pub(super) fn page_size(value: i32) -> Result<usize> {
    match value {
        v if v < 0 => Err(Error::invalid("page_size", format!("{v} is negative"))),
        0 => Ok(DEFAULT_PAGE_SIZE),
        v => Ok(usize::try_from(v).map_or(MAX_PAGE_SIZE, |v| v.min(MAX_PAGE_SIZE))),
    }
}

pub(super) fn country(
    v: &mut Violations,
    field: &str,
    value: &str,
    required: bool,
) -> Option<CountryCode> {
    if value.is_empty() {
        if required {
            v.add(field, "is required");
        }
        return None;
    }
    v.ok(field, CountryCode::parse(value))
}

pub(super) fn hs_code(v: &mut Violations, field: &str, value: &str) -> Option<HsCode> {
    if value.is_empty() {
        v.add(field, "is required");
        return None;
    }
    v.ok(field, HsCode::parse(value))
}

pub(super) fn date(v: &mut Violations, field: &str, value: &pb::Date) -> Option<NaiveDate> {
    let pb::Date { year, month, day } = *value;
    let parsed = u32::try_from(month)
        .ok()
        .zip(u32::try_from(day).ok())
        .filter(|_| (1..=9999).contains(&year))
        .and_then(|(m, d)| NaiveDate::from_ymd_opt(year, m, d));
    if parsed.is_none() {
        v.add(
            field,
            format!(
                "{year:04}-{month:02}-{day:02} is not a real date between 0001-01-01 and 9999-12-31"
            ),
        );
    }
    parsed
}

pub(super) fn optional_date(
    v: &mut Violations,
    field: &str,
    value: Option<&pb::Date>,
) -> Option<NaiveDate> {
    value.and_then(|d| date(v, field, d))
}

pub(super) fn date_range(
    v: &mut Violations,
    path: &str,
    value: &pb::DateRange,
) -> Option<DateRange> {
    let pb::DateRange { start, end } = value;
    let start_field = join(path, "start");
    let start = v
        .required(&start_field, start.as_ref())
        .and_then(|d| date(v, &start_field, d));
    let end_field = join(path, "end");
    let end = v
        .required(&end_field, end.as_ref())
        .and_then(|d| date(v, &end_field, d));
    let (start, end) = start.zip(end)?;
    v.ok(&end_field, DateRange::new(start, end))
}

pub(super) fn bound(v: &mut Violations, field: &str, value: i32) -> Bound {
    match pb::Bound::try_from(value) {
        Ok(pb::Bound::Unspecified | pb::Bound::Exact) => Bound::Exact,
        Ok(pb::Bound::AtLeast) => Bound::AtLeast,
        Ok(pb::Bound::AtMost) => Bound::AtMost,
        Ok(pb::Bound::Approximate) => Bound::Approximate,
        Err(_) => {
            v.add(field, format!("{value} is not a Bound"));
            Bound::Exact
        }
    }
}

fn money(v: &mut Violations, path: &str, value: &pb::Money) -> Option<Money> {
    let pb::Money {
        currency_code,
        units,
        nanos,
    } = value;
    match Money::new(currency_code, *units, *nanos) {
        Ok(money) => Some(money),
        Err(MoneyError::Currency(e)) => {
            v.add(join(path, "currency_code"), e);
            None
        }
        Err(MoneyError::Nanos(e)) => {
            v.add(join(path, "nanos"), e);
            None
        }
    }
}

/// A required, non-negative money figure with its bound.
pub(super) fn bounded_money(
    v: &mut Violations,
    path: &str,
    value: &pb::BoundedMoney,
) -> Option<BoundedMoney> {
    let pb::BoundedMoney { value, bound } = value;
    let bound = self::bound(v, &join(path, "bound"), *bound);
    let field = join(path, "value");
    let money = v.required(&field, value.as_ref())?;
    let money = self::money(v, &field, money)?;
    if money.is_negative() {
        v.add(join(&field, "units"), "a traded value must not be negative");
    }
    Some(BoundedMoney { money, bound })
}

pub(super) fn quantity(v: &mut Violations, path: &str, value: &pb::Quantity) -> Option<Quantity> {
    let pb::Quantity {
        amount,
        unit,
        bound,
    } = value;
    if !amount.is_finite() || *amount < 0.0 {
        v.add(
            join(path, "amount"),
            format!("{amount} is not a finite non-negative number"),
        );
    }
    Some(Quantity {
        amount: *amount,
        unit: v.text(&join(path, "unit"), unit, MAX_NAME_LEN, true),
        bound: self::bound(v, &join(path, "bound"), *bound),
    })
}

pub(super) fn period(v: &mut Violations, path: &str, value: &pb::Period) -> Option<Period> {
    use pb::period::Spec;
    // The dates and the label are output only: the server derives them.
    let pb::Period {
        spec,
        start_date: _,
        end_date: _,
        label: _,
    } = value;
    match spec {
        None => {
            v.add(join(path, "spec"), "set calendar_period or date_range");
            None
        }
        Some(Spec::DateRange(range)) => {
            date_range(v, &join(path, "date_range"), range).map(Period::from_range)
        }
        Some(Spec::CalendarPeriod(cp)) => calendar_period(v, &join(path, "calendar_period"), cp),
    }
}

fn calendar_period(v: &mut Violations, path: &str, value: &pb::CalendarPeriod) -> Option<Period> {
    use pb::calendar_period::Part;
    let pb::CalendarPeriod {
        calendar,
        year,
        part,
    } = *value;
    let calendar = match pb::Calendar::try_from(calendar) {
        Ok(pb::Calendar::Unspecified | pb::Calendar::Gregorian) => Calendar::Gregorian,
        Ok(pb::Calendar::SolarHijri) => Calendar::SolarHijri,
        Err(_) => {
            v.add(
                join(path, "calendar"),
                format!("{calendar} is not a Calendar"),
            );
            return None;
        }
    };
    let small = |n: i32| u8::try_from(n).unwrap_or(u8::MAX);
    let domain_part = match part {
        None => CalendarPart::Year,
        Some(Part::Quarter(q)) => CalendarPart::Quarter(small(q)),
        Some(Part::Month(m)) => CalendarPart::Month(small(m)),
    };
    let (field, description) = match Period::from_calendar(calendar, year, domain_part) {
        Ok(period) => return Some(period),
        Err(PeriodError::Year(e)) => ("year", e),
        Err(PeriodError::Quarter(_)) => match part {
            Some(Part::Quarter(q)) => ("quarter", format!("{q} is not a quarter (1 to 4)")),
            _ => ("quarter", "is not a quarter (1 to 4)".to_owned()),
        },
        Err(PeriodError::Month(_)) => match part {
            Some(Part::Month(m)) => ("month", format!("{m} is not a month (1 to 12)")),
            _ => ("month", "is not a month (1 to 12)".to_owned()),
        },
    };
    v.add(join(path, field), description);
    None
}

pub(super) fn required_period(
    v: &mut Violations,
    field: &str,
    value: Option<&pb::Period>,
) -> Option<Period> {
    v.required(field, value).and_then(|p| period(v, field, p))
}

pub(super) fn person(v: &mut Violations, path: &str, value: &pb::Person) -> Person {
    let pb::Person {
        name,
        role,
        organization,
    } = value;
    Person {
        name: v.text(&join(path, "name"), name, MAX_NAME_LEN, true),
        role: v.text(&join(path, "role"), role, MAX_NAME_LEN, false),
        organization: v.text(
            &join(path, "organization"),
            organization,
            MAX_NAME_LEN,
            false,
        ),
    }
}

pub(super) fn source(v: &mut Violations, path: &str, value: Option<&pb::Source>) -> Option<Source> {
    let pb::Source {
        organization,
        outlet,
        speaker,
        url,
        quote,
        published_date,
    } = v.required(path, value)?;
    if organization.trim().is_empty() && outlet.trim().is_empty() {
        v.add(
            join(path, "organization"),
            "set an organization or an outlet",
        );
    }
    let url = v.text(&join(path, "url"), url, MAX_URL_LEN, false);
    if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
        v.add(join(path, "url"), "must be an http or https URL");
    }
    Some(Source {
        organization: v.text(
            &join(path, "organization"),
            organization,
            MAX_NAME_LEN,
            false,
        ),
        outlet: v.text(&join(path, "outlet"), outlet, MAX_NAME_LEN, false),
        speaker: speaker
            .as_ref()
            .map(|p| Box::new(person(v, &join(path, "speaker"), p))),
        url,
        quote: v.long_text(&join(path, "quote"), quote, MAX_QUOTE_LEN),
        published_date: optional_date(v, &join(path, "published_date"), published_date.as_ref()),
    })
}

/// The keys of a trade figure, shared by records and reports.
pub(super) struct TradeKeys {
    pub(super) exporter: Option<CountryCode>,
    pub(super) importer: Option<CountryCode>,
    pub(super) hs_code: Option<HsCode>,
    pub(super) commodity: String,
}

/// Exporter and importer (required, and different), the HS code and the
/// commodity of the message at `path`.
pub(super) fn trade_keys(
    v: &mut Violations,
    path: &str,
    [exporter, importer, hs_code, commodity]: [&str; 4],
) -> TradeKeys {
    let exporter = country(v, &join(path, "exporter"), exporter, true);
    let importer = country(v, &join(path, "importer"), importer, true);
    if exporter.is_some() && exporter == importer {
        v.add(join(path, "importer"), "must differ from exporter");
    }
    TradeKeys {
        exporter,
        importer,
        hs_code: self::hs_code(v, &join(path, "hs_code"), hs_code),
        commodity: v.text(&join(path, "commodity"), commodity, MAX_NAME_LEN, false),
    }
}

/// A subscription's heartbeat interval; absent means the server default.
pub(super) fn heartbeat(
    v: &mut Violations,
    field: &str,
    value: Option<&prost_types::Duration>,
) -> Option<Duration> {
    let prost_types::Duration { seconds, nanos } = *value?;
    let interval = u64::try_from(seconds)
        .ok()
        .zip(u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000))
        .map(|(s, n)| Duration::new(s, n));
    match interval {
        Some(d) if (MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&d) => Some(d),
        _ => {
            v.add(
                field,
                format!("must be between {MIN_HEARTBEAT:?} and {MAX_HEARTBEAT:?}"),
            );
            None
        }
    }
}
