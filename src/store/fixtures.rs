//! Test fixtures of the store: the seed's figures as domain values, and
//! the mutation a draft makes of them.

use std::time::SystemTime;

use ulid::Ulid;

use super::draft::Drafted;
use super::state::Mutation;
use crate::domain::{
    Bound, BoundedMoney, Calendar, CalendarPart, CountryCode, ExportReport, HsCode, Money, Period,
    Source, TradeRecord,
};
use crate::error::Result;

fn usd(units: i64) -> BoundedMoney {
    BoundedMoney {
        money: Money::new("USD", units, 0).unwrap(),
        bound: Bound::Exact,
    }
}

fn year(y: i32) -> Period {
    Period::from_calendar(Calendar::Gregorian, y, CalendarPart::Year).unwrap()
}

fn source() -> Source {
    Source {
        organization: "Iran Trade Promotion Organization".into(),
        ..Source::default()
    }
}

pub(super) fn record(y: i32, units: i64) -> TradeRecord {
    TradeRecord {
        id: Ulid::nil(),
        create_time: SystemTime::UNIX_EPOCH,
        exporter: CountryCode::parse("IRN").unwrap(),
        importer: CountryCode::parse("RUS").unwrap(),
        hs_code: HsCode::parse("8708").unwrap(),
        commodity: "auto parts".into(),
        period: year(y),
        value: usd(units),
        quantity: None,
        source: source(),
        revision: 1,
    }
}

/// A report of `y` against `y - 1`, both figures given.
pub(super) fn report(y: i32) -> ExportReport {
    ExportReport {
        id: Ulid::nil(),
        sequence: 0,
        publish_time: SystemTime::UNIX_EPOCH,
        exporter: CountryCode::parse("IRN").unwrap(),
        importer: CountryCode::parse("RUS").unwrap(),
        hs_code: HsCode::parse("8708").unwrap(),
        commodity: "auto parts".into(),
        headline: format!("exports in {y}"),
        source: source(),
        period: year(y),
        value: Some(usd(66_000_000)),
        baseline_period: Some(year(y - 1)),
        baseline_value: Some(usd(13_000_000)),
        change: None,
        trade_record_id: None,
        baseline_trade_record_id: None,
    }
}

pub(super) fn mutation(drafted: Result<Drafted>) -> Mutation {
    match drafted {
        Ok(Drafted::Mutate(mutation)) => *mutation,
        other => panic!("expected a mutation, got {other:?}"),
    }
}
