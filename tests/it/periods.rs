//! Periods over the API: Solar Hijri boundaries and Gregorian labels, as a
//! client sees them on stored records.

use crate::common::*;
use tradewire::pb;

async fn stored_period(
    client: &mut pb::trade_service_client::TradeServiceClient<tonic::transport::Channel>,
    period: pb::Period,
) -> pb::Period {
    let mut input = record("IRN", "RUS", "8708", 2024, 1);
    input.period = Some(period);
    client
        .create_trade_record(create(input))
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap()
        .period
        .unwrap()
}

fn month(calendar: pb::Calendar, year: i32, month: i32) -> pb::Period {
    pb::Period {
        spec: Some(pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
            calendar: calendar.into(),
            year,
            part: Some(pb::calendar_period::Part::Month(month)),
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn solar_hijri_boundaries() {
    let server = TestServer::start().await;
    let mut client = server.trade().await;
    let farvardin = stored_period(&mut client, month(pb::Calendar::SolarHijri, 1403, 1)).await;
    assert_eq!(
        farvardin.start_date,
        Some(date(2024, 3, 20)),
        "1 Farvardin 1403"
    );
    assert_eq!(farvardin.label, "1403-01 SH");
    let khordad = stored_period(&mut client, month(pb::Calendar::SolarHijri, 1403, 3)).await;
    assert_eq!(khordad.end_date, Some(date(2024, 6, 20)), "31 Khordad 1403");
    let y1403 = stored_period(&mut client, year(pb::Calendar::SolarHijri, 1403)).await;
    assert_eq!(
        y1403.end_date,
        Some(date(2025, 3, 20)),
        "30 Esfand 1403, a leap year"
    );
    assert_eq!(y1403.label, "1403 SH");
    let esfand = stored_period(&mut client, month(pb::Calendar::SolarHijri, 1403, 12)).await;
    assert_eq!(esfand.start_date, Some(date(2025, 2, 19)));
    assert_eq!(esfand.end_date, Some(date(2025, 3, 20)));
    let y1402 = stored_period(&mut client, year(pb::Calendar::SolarHijri, 1402)).await;
    assert_eq!(
        y1402.start_date,
        Some(date(2023, 3, 21)),
        "1 Farvardin 1402"
    );
    assert_eq!(
        y1402.end_date,
        Some(date(2024, 3, 19)),
        "1402 is not leap: 29 Esfand"
    );
}

#[tokio::test]
async fn gregorian_labels_and_ranges() {
    let server = TestServer::start().await;
    let mut client = server.trade().await;
    let q2 = stored_period(&mut client, quarter(pb::Calendar::Gregorian, 2024, 2)).await;
    assert_eq!(
        (q2.label.as_str(), q2.start_date, q2.end_date),
        ("2024-Q2", Some(date(2024, 4, 1)), Some(date(2024, 6, 30)))
    );
    let feb = stored_period(&mut client, month(pb::Calendar::Unspecified, 2024, 2)).await;
    assert_eq!(
        (feb.label.as_str(), feb.end_date),
        ("2024-02", Some(date(2024, 2, 29)))
    );
    let range = pb::Period {
        spec: Some(pb::period::Spec::DateRange(pb::DateRange {
            start: Some(date(2024, 3, 21)),
            end: Some(date(2024, 6, 20)),
        })),
        ..Default::default()
    };
    let range = stored_period(&mut client, range).await;
    assert_eq!(range.label, "2024-03-21..2024-06-20");
}
