//! TradeService validation over a real server: every rule names its
//! field and stores nothing; bad ids, page sizes, tokens and filters are
//! INVALID_ARGUMENT.

use crate::common::*;
use tonic::Code;
use tradewire::pb;

/// Each case breaks one rule of a valid record and names the field that
/// must be reported.
#[tokio::test]
async fn every_validation_rule_names_its_field_and_stores_nothing() {
    let server = TestServer::start().await;
    let mut client = server.trade().await;
    let range = |start: pb::Date, end: pb::Date| {
        Some(pb::Period {
            spec: Some(pb::period::Spec::DateRange(pb::DateRange {
                start: Some(start),
                end: Some(end),
            })),
            ..Default::default()
        })
    };
    let calendar = |calendar: i32, year: i32, part: Option<pb::calendar_period::Part>| {
        Some(pb::Period {
            spec: Some(pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
                calendar,
                year,
                part,
            })),
            ..Default::default()
        })
    };
    let cases: Vec<Case<pb::TradeRecord>> = vec![
        ("trade_record.exporter", Box::new(|r| r.exporter.clear())),
        (
            "trade_record.exporter",
            Box::new(|r| r.exporter = "irn".into()),
        ),
        (
            "trade_record.exporter",
            Box::new(|r| r.exporter = "XXX".into()),
        ),
        (
            "trade_record.importer",
            Box::new(|r| r.importer = "IR".into()),
        ),
        (
            "trade_record.importer",
            Box::new(|r| r.importer = "IRN".into()),
        ),
        ("trade_record.hs_code", Box::new(|r| r.hs_code.clear())),
        (
            "trade_record.hs_code",
            Box::new(|r| r.hs_code = "870".into()),
        ),
        (
            "trade_record.hs_code",
            Box::new(|r| r.hs_code = "87a8".into()),
        ),
        (
            "trade_record.hs_code",
            Box::new(|r| r.hs_code = "8708999".into()),
        ),
        (
            "trade_record.commodity",
            Box::new(|r| r.commodity = "x".repeat(201)),
        ),
        ("trade_record.period", Box::new(|r| r.period = None)),
        (
            "trade_record.period.spec",
            Box::new(|r| r.period = Some(pb::Period::default())),
        ),
        (
            "trade_record.period.calendar_period.quarter",
            Box::new(move |r| {
                r.period = calendar(1, 2024, Some(pb::calendar_period::Part::Quarter(5)))
            }),
        ),
        (
            "trade_record.period.calendar_period.quarter",
            Box::new(move |r| {
                r.period = calendar(1, 2024, Some(pb::calendar_period::Part::Quarter(0)))
            }),
        ),
        (
            "trade_record.period.calendar_period.month",
            Box::new(move |r| {
                r.period = calendar(2, 1403, Some(pb::calendar_period::Part::Month(13)))
            }),
        ),
        (
            "trade_record.period.calendar_period.year",
            Box::new(move |r| r.period = calendar(1, 0, None)),
        ),
        (
            "trade_record.period.calendar_period.year",
            Box::new(move |r| r.period = calendar(1, 10_000, None)),
        ),
        (
            "trade_record.period.calendar_period.calendar",
            Box::new(move |r| r.period = calendar(9, 2024, None)),
        ),
        (
            "trade_record.period.date_range.end",
            Box::new(move |r| r.period = range(date(2024, 6, 20), date(2024, 3, 21))),
        ),
        (
            "trade_record.period.date_range.start",
            Box::new(move |r| r.period = range(date(2023, 2, 29), date(2023, 3, 1))),
        ),
        (
            "trade_record.period.date_range.end",
            Box::new(move |r| r.period = range(date(2023, 1, 1), date(2023, 13, 1))),
        ),
        ("trade_record.value", Box::new(|r| r.value = None)),
        (
            "trade_record.value.value",
            Box::new(|r| r.value.as_mut().unwrap().value = None),
        ),
        (
            "trade_record.value.value.currency_code",
            Box::new(|r| {
                r.value
                    .as_mut()
                    .unwrap()
                    .value
                    .as_mut()
                    .unwrap()
                    .currency_code = "usd".into()
            }),
        ),
        (
            "trade_record.value.value.currency_code",
            Box::new(|r| {
                r.value
                    .as_mut()
                    .unwrap()
                    .value
                    .as_mut()
                    .unwrap()
                    .currency_code = "XYZ".into()
            }),
        ),
        (
            "trade_record.value.value.nanos",
            Box::new(|r| r.value.as_mut().unwrap().value.as_mut().unwrap().nanos = 1_000_000_000),
        ),
        (
            "trade_record.value.value.nanos",
            Box::new(|r| r.value.as_mut().unwrap().value.as_mut().unwrap().nanos = -5),
        ),
        (
            "trade_record.value.value.units",
            Box::new(|r| r.value.as_mut().unwrap().value.as_mut().unwrap().units = -1),
        ),
        (
            "trade_record.value.bound",
            Box::new(|r| r.value.as_mut().unwrap().bound = 99),
        ),
        (
            "trade_record.quantity.amount",
            Box::new(|r| {
                r.quantity = Some(pb::Quantity {
                    amount: f64::NAN,
                    unit: "t".into(),
                    bound: 0,
                })
            }),
        ),
        (
            "trade_record.quantity.unit",
            Box::new(|r| {
                r.quantity = Some(pb::Quantity {
                    amount: 1.0,
                    unit: String::new(),
                    bound: 0,
                })
            }),
        ),
        ("trade_record.source", Box::new(|r| r.source = None)),
        (
            "trade_record.source.organization",
            Box::new(|r| r.source = Some(pb::Source::default())),
        ),
        (
            "trade_record.source.url",
            Box::new(|r| r.source.as_mut().unwrap().url = "ftp://x".into()),
        ),
        (
            "trade_record.source.quote",
            Box::new(|r| r.source.as_mut().unwrap().quote = "q".repeat(5001)),
        ),
        (
            "trade_record.source.published_date",
            Box::new(|r| r.source.as_mut().unwrap().published_date = Some(date(2024, 2, 30))),
        ),
        (
            "trade_record.source.speaker.name",
            Box::new(|r| r.source.as_mut().unwrap().speaker = Some(pb::Person::default())),
        ),
    ];
    for (field, mutate) in &cases {
        let mut input = record("IRN", "RUS", "8708", 2022, 13_000_000);
        mutate(&mut input);
        let status = client.create_trade_record(create(input)).await.unwrap_err();
        assert_names_field(&status, field);
    }

    let missing = client
        .create_trade_record(pb::CreateTradeRecordRequest::default())
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&missing), vec!["trade_record"]);
    let long_id = client
        .create_trade_record(pb::CreateTradeRecordRequest {
            trade_record: Some(record("IRN", "RUS", "8708", 2022, 1)),
            request_id: "r".repeat(129),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&long_id), vec!["request_id"]);
    let control = client
        .create_trade_record(pb::CreateTradeRecordRequest {
            trade_record: Some(record("IRN", "RUS", "8708", 2022, 1)),
            request_id: "retry\n1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&control), vec!["request_id"]);

    assert_eq!(
        server.app.counts().trade_records,
        0,
        "no failed request stored anything"
    );
}

#[tokio::test]
async fn bad_ids_page_sizes_tokens_and_filters_are_invalid_arguments() {
    let server = TestServer::start().await;
    let mut client = server.trade().await;
    let status = client
        .get_trade_record(pb::GetTradeRecordRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["id"]);
    let status = client
        .get_trade_record(pb::GetTradeRecordRequest::default())
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["id"]);
    let status = client
        .get_trade_record(pb::GetTradeRecordRequest {
            id: ulid::Ulid::new().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let list = |request: pb::ListTradeRecordsRequest| {
        let mut client = client.clone();
        async move { client.list_trade_records(request).await.unwrap_err() }
    };
    let status = list(pb::ListTradeRecordsRequest {
        page_size: -1,
        ..Default::default()
    })
    .await;
    assert_eq!(violated_fields(&status), vec!["page_size"]);
    let status = list(pb::ListTradeRecordsRequest {
        page_token: "garbage!".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(violated_fields(&status), vec!["page_token"]);
    let bad_filter = pb::TradeFilter {
        exporter: "ZZZ".into(),
        importer: "rus".into(),
        hs_prefix: "87x".into(),
        period_overlaps: Some(pb::DateRange {
            start: Some(date(2024, 1, 2)),
            end: Some(date(2024, 1, 1)),
        }),
    };
    let status = list(pb::ListTradeRecordsRequest {
        filter: Some(bad_filter),
        ..Default::default()
    })
    .await;
    assert_eq!(
        violated_fields(&status),
        vec![
            "filter.exporter",
            "filter.importer",
            "filter.hs_prefix",
            "filter.period_overlaps.end"
        ]
    );
}
