//! Each clause of the counting rule, the bounds of sums, and growth.

use std::sync::Arc;
use std::time::SystemTime;

use super::*;
use crate::domain::{Source, TradeFilter};

fn money(units: i64, bound: Bound) -> BoundedMoney {
    BoundedMoney {
        money: Money::new("USD", units, 0).unwrap(),
        bound,
    }
}

fn period(calendar: Calendar, year: i32, part: CalendarPart) -> Period {
    Period::from_calendar(calendar, year, part).unwrap()
}

fn greg(year: i32, part: CalendarPart) -> Period {
    period(Calendar::Gregorian, year, part)
}

fn record(hs: &str, period: Period, value: BoundedMoney, organization: &str) -> Arc<TradeRecord> {
    Arc::new(TradeRecord {
        id: Ulid::new(),
        create_time: SystemTime::UNIX_EPOCH,
        exporter: CountryCode::parse("IRN").unwrap(),
        importer: CountryCode::parse("RUS").unwrap(),
        hs_code: HsCode::parse(hs).unwrap(),
        commodity: "auto parts".into(),
        period,
        value,
        quantity: None,
        source: Source {
            organization: organization.into(),
            ..Source::default()
        },
        revision: 1,
    })
}

fn query(calendar: Calendar, granularity: Granularity, first: i32, last: i32) -> SummaryQuery {
    SummaryQuery {
        filter: TradeFilter::default(),
        calendar,
        granularity,
        first_year: first,
        last_year: last,
        currency: None,
    }
}

/// `summarize` over the query's own buckets, as the store calls it.
fn summary_of(
    query: &SummaryQuery,
    records: &[Arc<TradeRecord>],
    reports: &[Arc<ExportReport>],
) -> Result<Summary, SummaryError> {
    let records: Vec<&TradeRecord> = records.iter().map(|r| r.as_ref()).collect();
    let reports: Vec<&ExportReport> = reports.iter().map(|r| r.as_ref()).collect();
    summarize(query, &query.buckets().unwrap(), &records, &reports)
}

fn years(first: i32, last: i32, records: &[Arc<TradeRecord>]) -> Vec<Bucket> {
    summary_of(
        &query(Calendar::Gregorian, Granularity::Year, first, last),
        records,
        &[],
    )
    .unwrap()
    .buckets
}

/// The records as the counting reads them.
fn refs(records: &[Arc<TradeRecord>]) -> Vec<&TradeRecord> {
    records.iter().map(|r| r.as_ref()).collect()
}

fn units(value: Option<BoundedMoney>) -> Option<(i64, Bound)> {
    value.map(|v| (v.money.units, v.bound))
}

#[test]
fn the_seed_years_grow_at_least_407_69_percent() {
    let records = [
        record(
            "8708",
            greg(2022, CalendarPart::Year),
            money(13_000_000, Bound::Exact),
            "ITPO",
        ),
        record(
            "8708",
            greg(2023, CalendarPart::Year),
            money(66_000_000, Bound::AtLeast),
            "ITPO",
        ),
    ];
    let buckets = years(2022, 2023, &records);
    assert_eq!(
        buckets.len(),
        2,
        "empty buckets and the prior year are handled"
    );
    assert_eq!(buckets[0].period.label, "2022");
    assert_eq!(units(buckets[0].total), Some((13_000_000, Bound::Exact)));
    assert_eq!(units(buckets[1].total), Some((66_000_000, Bound::AtLeast)));
    let change = buckets[1].change_from_year_earlier.unwrap();
    assert_eq!(change.change.percent, 407.69);
    assert_eq!(change.change.bound, Bound::AtLeast);
    assert_eq!(change.stated_by, None);
    assert_eq!(
        buckets[1].change_from_previous,
        buckets[1].change_from_year_earlier
    );
    assert!(
        buckets[0].change_from_previous.is_none(),
        "2021 has no total"
    );
}

#[test]
fn empty_buckets_are_listed() {
    let records = [record(
        "8708",
        greg(2020, CalendarPart::Year),
        money(5, Bound::Exact),
        "A",
    )];
    let buckets = years(2019, 2021, &records);
    let labels: Vec<_> = buckets.iter().map(|b| b.period.label.as_str()).collect();
    assert_eq!(labels, ["2019", "2020", "2021"]);
    assert!(buckets[0].total.is_none() && buckets[2].total.is_none());
    assert_eq!(buckets[0].record_count, 0);
    assert!(
        buckets[2].change_from_previous.is_none(),
        "no total, no change"
    );
}

#[test]
fn a_record_straddling_a_bucket_is_unallocated_not_prorated() {
    let q2 = record(
        "8708",
        greg(2024, CalendarPart::Quarter(2)),
        money(10, Bound::Exact),
        "A",
    );
    let year = record(
        "8708",
        greg(2024, CalendarPart::Year),
        money(40, Bound::Exact),
        "A",
    );
    let buckets = summary_of(
        &query(Calendar::SolarHijri, Granularity::Quarter, 1403, 1403),
        &[q2.clone(), year.clone()],
        &[],
    )
    .unwrap()
    .buckets;
    // 1403-Q1 SH is 2024-03-20..2024-06-20: both records straddle it.
    let first = &buckets[0];
    assert_eq!(first.period.label, "1403-Q1 SH");
    assert!(first.total.is_none());
    let ids: Vec<_> = first.unallocated.listed.iter().map(|u| u.record).collect();
    assert!(ids.contains(&q2.id) && ids.contains(&year.id));
    assert!(
        first.unallocated.listed[0]
            .reason
            .contains("never prorated")
    );
}

#[test]
fn sources_of_one_figure_are_alternatives_not_addends() {
    let a = record(
        "8708",
        greg(2023, CalendarPart::Year),
        money(60, Bound::Exact),
        "Customs",
    );
    let b = record(
        "8708",
        greg(2023, CalendarPart::Year),
        money(66, Bound::AtLeast),
        "ITPO",
    );
    let buckets = years(2023, 2023, &[a, b]);
    assert_eq!(units(buckets[0].total), Some((60, Bound::Exact)));
    assert_eq!(units(buckets[0].total_high), Some((66, Bound::AtLeast)));
    assert_eq!(buckets[0].record_count, 2);
    assert_eq!(buckets[0].sources, ["Customs", "ITPO"]);
}

#[test]
fn a_record_for_the_whole_bucket_wins_over_its_parts() {
    let whole = record(
        "8708",
        greg(2023, CalendarPart::Year),
        money(100, Bound::Exact),
        "A",
    );
    let part = record(
        "8708",
        greg(2023, CalendarPart::Quarter(1)),
        money(30, Bound::Exact),
        "B",
    );
    let buckets = years(2023, 2023, &[whole, part.clone()]);
    assert_eq!(units(buckets[0].total), Some((100, Bound::Exact)));
    assert_eq!(buckets[0].record_count, 1);
    assert_eq!(buckets[0].unallocated.listed.len(), 1);
    assert_eq!(buckets[0].unallocated.listed[0].record, part.id);
    assert!(
        buckets[0].unallocated.listed[0]
            .reason
            .contains("whole bucket")
    );
}

#[test]
fn parts_that_do_not_overlap_are_added_and_overlapping_ones_are_not() {
    let q1 = record(
        "8708",
        greg(2023, CalendarPart::Quarter(1)),
        money(30, Bound::Exact),
        "A",
    );
    let q2 = record(
        "8708",
        greg(2023, CalendarPart::Quarter(2)),
        money(20, Bound::AtLeast),
        "A",
    );
    let march = record(
        "8708",
        greg(2023, CalendarPart::Month(3)),
        money(9, Bound::Exact),
        "A",
    );
    let buckets = years(2023, 2023, &[q1, q2, march.clone()]);
    assert_eq!(units(buckets[0].total), Some((50, Bound::AtLeast)));
    assert_eq!(buckets[0].record_count, 2);
    assert_eq!(buckets[0].unallocated.listed.len(), 1);
    assert_eq!(buckets[0].unallocated.listed[0].record, march.id);
    assert!(buckets[0].unallocated.listed[0].reason.contains("overlaps"));
}

#[test]
fn different_hs_codes_are_added() {
    let a = record(
        "8708",
        greg(2023, CalendarPart::Year),
        money(10, Bound::Exact),
        "A",
    );
    let b = record(
        "8703",
        greg(2023, CalendarPart::Year),
        money(5, Bound::Approximate),
        "A",
    );
    let buckets = years(2023, 2023, &[a, b]);
    assert_eq!(units(buckets[0].total), Some((15, Bound::Approximate)));
}

#[test]
fn a_heading_is_never_added_to_its_own_subheadings() {
    // The seed's 2023 heading, and a made-up part of it for the same pair
    // and year: a summary over chapter 87 counts the heading alone.
    let heading = record(
        "8708",
        greg(2023, CalendarPart::Year),
        money(66_000_000, Bound::AtLeast),
        "ITPO",
    );
    let part = record(
        "870899",
        greg(2023, CalendarPart::Year),
        money(30_000_000, Bound::Exact),
        "ITPO",
    );
    let chapter = record(
        "87",
        greg(2022, CalendarPart::Year),
        money(20_000_000, Bound::Exact),
        "ITPO",
    );
    let part_2022 = record(
        "8708",
        greg(2022, CalendarPart::Year),
        money(13_000_000, Bound::Exact),
        "ITPO",
    );
    let buckets = years(
        2022,
        2023,
        &[heading.clone(), part.clone(), chapter, part_2022.clone()],
    );
    assert_eq!(units(buckets[1].total), Some((66_000_000, Bound::AtLeast)));
    assert_eq!(buckets[1].record_count, 1);
    let listed = &buckets[1].unallocated.listed;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].record, part.id);
    assert!(listed[0].reason.contains("HS 8708"), "{}", listed[0].reason);
    // The chapter counts over its heading too, in 2022.
    assert_eq!(units(buckets[0].total), Some((20_000_000, Bound::Exact)));
    assert_eq!(buckets[0].unallocated.listed[0].record, part_2022.id);

    // Over different years, or for another pair, both are counted.
    let mut other_pair = (*part).clone();
    other_pair.importer = CountryCode::parse("ARM").unwrap();
    let buckets = years(2023, 2023, &[heading, Arc::new(other_pair)]);
    assert_eq!(units(buckets[0].total), Some((96_000_000, Bound::AtLeast)));
    assert_eq!(buckets[0].unallocated.count, 0);
}

#[test]
fn bounds_of_sums() {
    use Bound::*;
    assert_eq!(sum_bound(Exact, Exact), Exact);
    assert_eq!(sum_bound(Exact, AtLeast), AtLeast);
    assert_eq!(sum_bound(AtLeast, AtLeast), AtLeast);
    assert_eq!(sum_bound(AtMost, Exact), AtMost);
    assert_eq!(sum_bound(AtLeast, AtMost), Approximate);
    assert_eq!(sum_bound(Approximate, Exact), Approximate);
}

#[test]
fn currencies_are_never_added() {
    let usd = record(
        "8708",
        greg(2023, CalendarPart::Year),
        money(10, Bound::Exact),
        "A",
    );
    let mut rub = (*record(
        "8708",
        greg(2022, CalendarPart::Year),
        money(10, Bound::Exact),
        "A",
    ))
    .clone();
    rub.value.money = Money::new("RUB", 10, 0).unwrap();
    let mixed = summary_of(
        &query(Calendar::Gregorian, Granularity::Year, 2022, 2023),
        &[usd, Arc::new(rub)],
        &[],
    );
    assert_eq!(
        mixed.unwrap_err(),
        SummaryError::MixedCurrencies(vec!["RUB", "USD"])
    );
}

#[test]
fn a_report_states_the_change_of_a_bucket_without_values() {
    let q1 = period(Calendar::SolarHijri, 1403, CalendarPart::Quarter(1));
    let report = Arc::new(ExportReport {
        id: Ulid::new(),
        sequence: 2,
        publish_time: SystemTime::UNIX_EPOCH,
        exporter: CountryCode::parse("IRN").unwrap(),
        importer: CountryCode::parse("RUS").unwrap(),
        hs_code: HsCode::parse("8708").unwrap(),
        commodity: "auto parts".into(),
        headline: "grew 100%".into(),
        source: Source::default(),
        period: q1,
        value: None,
        baseline_period: Some(period(Calendar::SolarHijri, 1402, CalendarPart::Quarter(1))),
        baseline_value: None,
        change: Some(Change {
            percent: 100.0,
            bound: Bound::Exact,
        }),
        trade_record_id: None,
        baseline_trade_record_id: None,
    });
    let summary = summary_of(
        &query(Calendar::SolarHijri, Granularity::Quarter, 1403, 1403),
        &[],
        std::slice::from_ref(&report),
    )
    .unwrap();
    let stated = summary.buckets[0].change_from_year_earlier.unwrap();
    assert_eq!(stated.change.percent, 100.0);
    assert_eq!(stated.stated_by, Some(report.id));
    assert!(summary.buckets[1].change_from_year_earlier.is_none());
    assert!(
        summary.buckets[0].change_from_previous.is_none(),
        "only year on year is stated"
    );
}

fn breakdown_query(by: BreakdownBy, top: usize) -> BreakdownQuery {
    BreakdownQuery {
        filter: TradeFilter {
            exporter: Some(CountryCode::parse("IRN").unwrap()),
            ..TradeFilter::default()
        },
        period: greg(2023, CalendarPart::Year),
        by,
        top,
        currency: None,
    }
}

fn to(importer: &str, hs: &str, units_: i64) -> Arc<TradeRecord> {
    let mut r = (*record(
        hs,
        greg(2023, CalendarPart::Year),
        money(units_, Bound::Exact),
        "A",
    ))
    .clone();
    r.importer = CountryCode::parse(importer).unwrap();
    Arc::new(r)
}

#[test]
fn a_breakdown_ranks_partners_and_its_shares_add_up_to_100() {
    let records = [
        to("RUS", "8708", 66),
        to("IRQ", "8708", 20),
        to("RUS", "8703", 4),
        to("ARM", "8708", 10),
    ];
    let ranked = breakdown(&breakdown_query(BreakdownBy::Partner, 2), &refs(&records)).unwrap();
    let keys: Vec<_> = ranked.shares.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["RUS", "IRQ"]);
    assert_eq!(ranked.shares[0].value.money.units, 70);
    assert_eq!(ranked.shares[0].percent, 70.0);
    let others = ranked.others.as_ref().unwrap();
    assert_eq!(
        (others.key.as_str(), others.value.money.units),
        ("others", 10)
    );
    let sum: f64 = ranked.shares.iter().map(|s| s.percent).sum::<f64>() + others.percent;
    assert!((sum - 100.0).abs() < 1e-9, "{sum}");
    assert_eq!(ranked.total.unwrap().money.units, 100);
}

#[test]
fn a_breakdown_by_hs_code_cuts_codes_to_the_level() {
    let records = [
        to("RUS", "870810", 30),
        to("RUS", "870899", 20),
        to("RUS", "8703", 50),
    ];
    let by_4 = breakdown(
        &breakdown_query(BreakdownBy::HsCode(4), 10),
        &refs(&records),
    )
    .unwrap();
    let shares: Vec<_> = by_4
        .shares
        .iter()
        .map(|s| (s.key.as_str(), s.percent))
        .collect();
    assert_eq!(shares, [("8703", 50.0), ("8708", 50.0)]);
    assert!(by_4.others.is_none());
    let by_2 = breakdown(
        &breakdown_query(BreakdownBy::HsCode(2), 10),
        &refs(&records),
    )
    .unwrap();
    assert_eq!(by_2.shares.len(), 1);
    assert_eq!(
        (by_2.shares[0].key.as_str(), by_2.shares[0].percent),
        ("87", 100.0)
    );
}

#[test]
fn a_bucket_lists_at_most_20_unallocated_records_and_counts_them_all() {
    let records: Vec<_> = (0..30)
        .map(|i| {
            record(
                "8708",
                greg(2024, CalendarPart::Year),
                money(i, Bound::Exact),
                &format!("source {i}"),
            )
        })
        .collect();
    let summary = summary_of(
        &query(Calendar::Gregorian, Granularity::Quarter, 2024, 2024),
        &records,
        &[],
    )
    .unwrap();
    let q1 = &summary.buckets[0].unallocated;
    assert_eq!(q1.count, 30);
    assert_eq!(q1.listed.len(), MAX_UNALLOCATED_LISTED);
}
