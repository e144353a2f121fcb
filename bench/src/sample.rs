//! Realistic data: many country pairs, HS codes and periods, deterministic
//! for a given index.

use tradewire::pb;

const COUNTRIES: [&str; 40] = [
    "IRN", "RUS", "TUR", "CHN", "IND", "ARE", "IRQ", "AFG", "PAK", "ARM", "AZE", "KAZ", "UZB",
    "TKM", "BLR", "SAU", "QAT", "OMN", "KWT", "SYR", "LBN", "EGY", "DEU", "FRA", "ITA", "ESP",
    "GBR", "USA", "BRA", "ZAF", "JPN", "KOR", "VNM", "IDN", "MYS", "THA", "GEO", "UKR", "POL",
    "NLD",
];
const HS_CODES: [&str; 24] = [
    "8708", "8703", "8704", "8701", "2709", "2710", "2711", "7208", "7210", "3901", "3902", "1001",
    "1005", "0804", "0805", "5201", "6203", "8471", "8517", "3004", "2523", "7601", "870899",
    "870840",
];

/// Every 50th record is the hot pair IRN to RUS, so a pair filter finds
/// 200 records per 10,000.
/// Record `j` (0..100) of a pair the generated records never use: one
/// quarter of 2000..=2024 each, so a store of any size holds the same 100.
pub(crate) fn quiet_pair_record(j: u64) -> pb::TradeRecord {
    let mut record = record(j);
    record.exporter = "MNG".into();
    record.importer = "NPL".into();
    record.hs_code = "8708".into();
    record.period = Some(pb::Period {
        spec: Some(pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
            calendar: pb::Calendar::Gregorian.into(),
            year: 2000 + (j / 4) as i32,
            part: Some(pb::calendar_period::Part::Quarter((j % 4) as i32 + 1)),
        })),
        ..Default::default()
    });
    record
}

pub(crate) fn record(i: u64) -> pb::TradeRecord {
    let (exporter, importer) = if i.is_multiple_of(50) {
        ("IRN", "RUS")
    } else {
        let e = (i * 7 % 40) as usize;
        let mut m = (i * 13 % 40) as usize;
        if m == e {
            m = (m + 1) % 40;
        }
        (COUNTRIES[e], COUNTRIES[m])
    };
    let year = 2000 + (i % 25) as i32;
    let period = if i.is_multiple_of(3) {
        pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
            calendar: pb::Calendar::Gregorian.into(),
            year,
            part: None,
        })
    } else {
        pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
            calendar: pb::Calendar::Gregorian.into(),
            year,
            part: Some(pb::calendar_period::Part::Quarter((i % 4) as i32 + 1)),
        })
    };
    pb::TradeRecord {
        exporter: exporter.into(),
        importer: importer.into(),
        hs_code: HS_CODES[(i % HS_CODES.len() as u64) as usize].into(),
        commodity: "auto parts and accessories".into(),
        period: Some(pb::Period {
            spec: Some(period),
            ..Default::default()
        }),
        value: Some(pb::BoundedMoney {
            value: Some(pb::Money {
                currency_code: "USD".into(),
                units: 1_000_000 + (i as i64 % 90_000_000),
                nanos: 0,
            }),
            bound: pb::Bound::Exact.into(),
        }),
        source: Some(pb::Source {
            organization: "Iran Trade Promotion Organization".into(),
            outlet: "IRNA".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A record as the server returns it, with the output-only fields set.
pub(crate) fn stored_record(i: u64) -> pb::TradeRecord {
    let mut r = record(i);
    r.id = "01M8DQF75WZ9JT333QMSGPVSJ6".into();
    r.create_time = Some(prost_types::Timestamp {
        seconds: 1_795_758_277,
        nanos: 110_214_651,
    });
    if let Some(p) = r.period.as_mut() {
        p.start_date = Some(pb::Date {
            year: 2024,
            month: 1,
            day: 1,
        });
        p.end_date = Some(pb::Date {
            year: 2024,
            month: 3,
            day: 31,
        });
        p.label = "2024-Q1".into();
    }
    r
}

pub(crate) fn report(i: u64) -> pb::ExportReport {
    let r = record(i);
    pb::ExportReport {
        exporter: r.exporter,
        importer: r.importer,
        hs_code: r.hs_code,
        commodity: r.commodity,
        headline: format!("Auto parts exports, report {i}"),
        source: r.source,
        period: r.period,
        value: r.value,
        ..Default::default()
    }
}
