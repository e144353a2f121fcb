//! SummarizeTrade over the seed's facts, through the RPC: growth in
//! Gregorian years, the stated change of a Solar Hijri quarter, records a
//! bucket cannot allocate, currencies, and bad requests.

use tonic::Code;
use tradewire::{Config, pb};

use crate::common::*;

async fn demo_server() -> TestServer {
    TestServer::with_config(Config {
        demo: true,
        ..Config::default()
    })
    .await
}

fn seed_filter() -> Option<pb::TradeFilter> {
    Some(pb::TradeFilter {
        exporter: "IRN".into(),
        importer: "RUS".into(),
        hs_prefix: "8708".into(),
        ..Default::default()
    })
}

fn request(
    calendar: pb::Calendar,
    granularity: pb::Granularity,
    first_year: i32,
    last_year: i32,
) -> pb::SummarizeTradeRequest {
    pb::SummarizeTradeRequest {
        filter: seed_filter(),
        calendar: calendar.into(),
        granularity: granularity.into(),
        first_year,
        last_year,
        currency_code: String::new(),
    }
}

fn units(m: &Option<pb::BoundedMoney>) -> Option<(i64, pb::Bound)> {
    m.as_ref()
        .map(|m| (m.value.as_ref().unwrap().units, m.bound()))
}

#[tokio::test]
async fn the_seed_years_sum_to_13_million_then_at_least_66_million_up_at_least_407_69_percent() {
    let server = demo_server().await;
    let summary = server
        .trade()
        .await
        .summarize_trade(request(
            pb::Calendar::Gregorian,
            pb::Granularity::Year,
            2022,
            2023,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.currency_code, "USD");
    let [y2022, y2023] = summary.buckets.as_slice() else {
        panic!("two buckets: {:?}", summary.buckets);
    };
    assert_eq!(y2022.period.as_ref().unwrap().label, "2022");
    assert_eq!(units(&y2022.total), Some((13_000_000, pb::Bound::Exact)));
    assert_eq!(units(&y2023.total), Some((66_000_000, pb::Bound::AtLeast)));
    assert_eq!(y2023.record_count, 1);
    assert_eq!(y2023.sources, ["Iran Trade Promotion Organization"]);
    let growth = y2023.change_from_year_earlier.as_ref().unwrap();
    assert_eq!(growth.percent, 407.69);
    assert_eq!(growth.bound(), pb::Bound::AtLeast);
    assert!(!growth.stated);
    assert_eq!(y2023.change_from_previous.as_ref(), Some(growth));
}

#[tokio::test]
async fn solar_hijri_quarters_carry_the_stated_100_percent_and_name_what_they_cannot_allocate() {
    let server = demo_server().await;
    let mut trade = server.trade().await;
    let summary = trade
        .summarize_trade(request(
            pb::Calendar::SolarHijri,
            pb::Granularity::Quarter,
            1401,
            1403,
        ))
        .await
        .unwrap()
        .into_inner();
    let labels: Vec<&str> = summary
        .buckets
        .iter()
        .map(|b| b.period.as_ref().unwrap().label.as_str())
        .collect();
    assert_eq!(labels.len(), 12);
    assert_eq!(labels[0], "1401-Q1 SH");
    assert_eq!(labels[8], "1403-Q1 SH");

    let q1_1403 = &summary.buckets[8];
    assert!(q1_1403.total.is_none(), "no figure for the quarter itself");
    let stated = q1_1403.change_from_year_earlier.as_ref().unwrap();
    assert_eq!(
        (stated.percent, stated.bound(), stated.stated),
        (100.0, pb::Bound::Exact, true)
    );
    let report = server
        .reports()
        .await
        .get_export_report(pb::GetExportReportRequest {
            id: stated.export_report_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .export_report
        .unwrap();
    assert_eq!(report.period.unwrap().label, "1403-Q1 SH");

    // The Gregorian years 2022 and 2023 straddle Solar Hijri quarters:
    // never prorated, each named with its reason where it overlaps.
    let unallocated = |label: &str| -> Vec<String> {
        summary
            .buckets
            .iter()
            .find(|b| b.period.as_ref().unwrap().label == label)
            .unwrap()
            .unallocated
            .iter()
            .map(|u| u.period.as_ref().unwrap().label.clone())
            .collect()
    };
    assert_eq!(unallocated("1401-Q1 SH"), ["2022"]);
    assert_eq!(unallocated("1401-Q4 SH"), ["2022", "2023"]);
    assert_eq!(
        summary.buckets[3].unallocated_count, 2,
        "1401-Q4 SH counts them too"
    );
    assert_eq!(unallocated("1402-Q3 SH"), ["2023"]);
    assert!(unallocated("1403-Q2 SH").is_empty());
    let reason = &summary.buckets[0].unallocated[0].reason;
    assert!(
        reason.contains("straddles") && reason.contains("1401-Q1 SH"),
        "{reason}"
    );
    assert!(summary.buckets.iter().all(|b| b.total.is_none()));
}

#[tokio::test]
async fn mixed_currencies_are_refused_unless_one_is_named() {
    let server = demo_server().await;
    let mut trade = server.trade().await;
    let mut rub = record("IRN", "RUS", "8708", 2021, 5_000_000);
    rub.value
        .as_mut()
        .unwrap()
        .value
        .as_mut()
        .unwrap()
        .currency_code = "RUB".into();
    stored(&mut trade, rub).await;
    let mixed = trade
        .summarize_trade(request(
            pb::Calendar::Gregorian,
            pb::Granularity::Year,
            2021,
            2023,
        ))
        .await
        .unwrap_err();
    assert_eq!(mixed.code(), Code::FailedPrecondition);
    assert!(
        mixed.message().contains("RUB and USD")
            && mixed.message().contains("name one in currency_code"),
        "{}",
        mixed.message()
    );

    let in_rubles = trade
        .summarize_trade(pb::SummarizeTradeRequest {
            currency_code: "RUB".into(),
            ..request(pb::Calendar::Gregorian, pb::Granularity::Year, 2021, 2023)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(in_rubles.currency_code, "RUB");
    assert_eq!(
        units(&in_rubles.buckets[0].total),
        Some((5_000_000, pb::Bound::Exact))
    );
    assert!(in_rubles.buckets[1].total.is_none() && in_rubles.buckets[2].total.is_none());
}

#[tokio::test]
async fn bad_summary_requests_name_their_fields() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    let cases: Vec<(&str, pb::SummarizeTradeRequest)> = vec![
        (
            "granularity",
            request(
                pb::Calendar::Gregorian,
                pb::Granularity::Unspecified,
                2022,
                2023,
            ),
        ),
        (
            "last_year",
            request(pb::Calendar::Gregorian, pb::Granularity::Year, 2023, 2022),
        ),
        (
            "last_year",
            request(pb::Calendar::Gregorian, pb::Granularity::Month, 1900, 2000),
        ),
        (
            "first_year",
            request(pb::Calendar::Gregorian, pb::Granularity::Year, -5, -4),
        ),
        (
            "calendar",
            pb::SummarizeTradeRequest {
                calendar: 9,
                ..request(pb::Calendar::Gregorian, pb::Granularity::Year, 2022, 2023)
            },
        ),
        (
            "currency_code",
            pb::SummarizeTradeRequest {
                currency_code: "dollars".into(),
                ..request(pb::Calendar::Gregorian, pb::Granularity::Year, 2022, 2023)
            },
        ),
        (
            "filter.hs_prefix",
            pb::SummarizeTradeRequest {
                filter: Some(pb::TradeFilter {
                    hs_prefix: "87x".into(),
                    ..Default::default()
                }),
                ..request(pb::Calendar::Gregorian, pb::Granularity::Year, 2022, 2023)
            },
        ),
    ];
    for (field, bad) in cases {
        let status = trade.summarize_trade(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_names_field(&status, field);
    }
}

#[tokio::test]
async fn a_breakdown_of_the_partners_of_iran_in_2023_adds_up_to_100_percent() {
    let server = demo_server().await;
    let mut trade = server.trade().await;
    for (importer, units) in [("IRQ", 40_000_000), ("ARM", 9_000_000), ("TUR", 1_000_000)] {
        stored(&mut trade, record("IRN", importer, "8708", 2023, units)).await;
    }
    let breakdown = trade
        .breakdown_trade(pb::BreakdownTradeRequest {
            exporter: "IRN".into(),
            period: Some(year(pb::Calendar::Gregorian, 2023)),
            dimension: pb::BreakdownDimension::Partner.into(),
            top: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let shares: Vec<(&str, f64)> = breakdown
        .shares
        .iter()
        .map(|s| (s.key.as_str(), s.percent))
        .collect();
    // 66 (the seed's "more than $66 million") + 40 + 9 + 1 = 116 million.
    assert_eq!(shares.len(), 2);
    assert_eq!(shares[0].0, "RUS");
    assert_eq!(shares[1].0, "IRQ");
    assert_eq!(
        units(&breakdown.total),
        Some((116_000_000, pb::Bound::AtLeast))
    );
    let others = breakdown.others.as_ref().unwrap();
    assert_eq!(units(&others.value), Some((10_000_000, pb::Bound::Exact)));
    let sum = shares.iter().map(|s| s.1).sum::<f64>() + others.percent;
    assert!((sum - 100.0).abs() < 1e-9, "{sum}");
    assert_eq!(breakdown.period.unwrap().label, "2023");

    let both = trade
        .breakdown_trade(pb::BreakdownTradeRequest {
            period: Some(year(pb::Calendar::Gregorian, 2023)),
            dimension: pb::BreakdownDimension::Partner.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(both.code(), Code::InvalidArgument);
    assert_names_field(&both, "exporter");
    let level = trade
        .breakdown_trade(pb::BreakdownTradeRequest {
            period: Some(year(pb::Calendar::Gregorian, 2023)),
            dimension: pb::BreakdownDimension::HsCode.into(),
            hs_digits: 3,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_names_field(&level, "hs_digits");
}

/// The case: a $30M record for 870899, a part of the seed's 8708,
/// for the same pair and year. A summary of chapter 87 counts the heading
/// alone (at least $66M, not $96M) and names the part it left out.
#[tokio::test]
async fn a_subheading_is_not_added_to_its_heading() {
    let server = demo_server().await;
    let mut trade = server.trade().await;
    let mut part = record("IRN", "RUS", "870899", 2023, 30_000_000);
    part.source = Some(source("Iran Trade Promotion Organization"));
    let part = trade
        .create_trade_record(create(part))
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    let mut chapter = request(pb::Calendar::Gregorian, pb::Granularity::Year, 2023, 2023);
    chapter.filter.as_mut().unwrap().hs_prefix = "87".into();
    let summary = trade.summarize_trade(chapter).await.unwrap().into_inner();
    let [y2023] = summary.buckets.as_slice() else {
        panic!("one bucket: {:?}", summary.buckets);
    };
    assert_eq!(units(&y2023.total), Some((66_000_000, pb::Bound::AtLeast)));
    assert_eq!(y2023.unallocated_count, 1);
    assert_eq!(y2023.unallocated[0].trade_record_id, part.id);
}
