//! AnnouncementService over a real server.

use crate::common::*;
use tokio_stream::StreamExt;
use tonic::Code;
use tradewire::pb;
use tradewire::pb::watch_announcements_response::Event;

fn meeting() -> pb::Announcement {
    pb::Announcement {
        kind: pb::AnnouncementKind::Meeting.into(),
        headline: "Iran, Russia discuss expansion of ties in car industry".into(),
        body: "Manufacturers met on the sidelines of MIMS Automobility Moscow 2024.".into(),
        countries: vec!["IRN".into(), "RUS".into()],
        organizations: vec!["AvtoVAZ".into()],
        people: vec![pb::Person {
            name: "Farshad Moghimi".into(),
            role: "Deputy Minister of Industry, Mines and Trade".into(),
            organization: "Small Industries and Industrial Parks Organization of Iran".into(),
        }],
        event: Some(pb::Event {
            name: "MIMS Automobility Moscow 2024".into(),
            location: "Moscow, RUS".into(),
            start_date: Some(date(2024, 8, 19)),
        }),
        announced_date: Some(date(2024, 8, 19)),
        source: Some(pb::Source {
            outlet: "IRNA".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn forecast() -> pb::Announcement {
    pb::Announcement {
        kind: pb::AnnouncementKind::Forecast.into(),
        headline: "More than 1.5 million cars will be produced in Iran".into(),
        countries: vec!["IRN".into()],
        people: vec![pb::Person {
            name: "Abbas Aliabadi".into(),
            role: "former Minister of Industry, Mining and Trade".into(),
            ..Default::default()
        }],
        forecast: Some(pb::Forecast {
            subject: "cars produced".into(),
            country: "IRN".into(),
            target: Some(pb::Quantity {
                amount: 1_500_000.0,
                unit: "cars".into(),
                bound: pb::Bound::AtLeast.into(),
            }),
            due: Some(pb::forecast::Due::DuePeriod(year(
                pb::Calendar::SolarHijri,
                1403,
            ))),
            due_by: None,
        }),
        source: Some(pb::Source {
            outlet: "IRNA".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn create_announcement(a: pb::Announcement) -> pb::CreateAnnouncementRequest {
    pb::CreateAnnouncementRequest {
        announcement: Some(a),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn create_get_list_delete_round_trip() {
    let server = TestServer::start().await;
    let mut client = server.announcements().await;
    let stored = client
        .create_announcement(create_announcement(forecast()))
        .await
        .unwrap()
        .into_inner()
        .announcement
        .unwrap();
    assert_eq!(stored.sequence, 1);
    let due = stored.forecast.as_ref().unwrap();
    assert_eq!(due.due_by, Some(date(2025, 3, 20)), "end of SH 1403");
    let got = client
        .get_announcement(pb::GetAnnouncementRequest {
            id: stored.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .announcement
        .unwrap();
    assert_eq!(got, stored);
    client
        .delete_announcement(pb::DeleteAnnouncementRequest {
            id: stored.id.clone(),
        })
        .await
        .unwrap();
    let status = client
        .get_announcement(pb::GetAnnouncementRequest { id: stored.id })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .delete_announcement(pb::DeleteAnnouncementRequest {
            id: ulid::Ulid::new().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .delete_announcement(pb::DeleteAnnouncementRequest { id: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["id"]);
}

#[tokio::test]
async fn list_filters_by_kind_country_organization_person_text_and_date() {
    let server = TestServer::start().await;
    let mut client = server.announcements().await;
    let meeting_id = client
        .create_announcement(create_announcement(meeting()))
        .await
        .unwrap()
        .into_inner()
        .announcement
        .unwrap()
        .id;
    let forecast_id = client
        .create_announcement(create_announcement(forecast()))
        .await
        .unwrap()
        .into_inner()
        .announcement
        .unwrap()
        .id;
    let list = |filter: pb::AnnouncementFilter| {
        let mut client = client.clone();
        async move {
            client
                .list_announcements(pb::ListAnnouncementsRequest {
                    filter: Some(filter),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .announcements
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    let both = vec![meeting_id.clone(), forecast_id.clone()];
    assert_eq!(list(pb::AnnouncementFilter::default()).await, both);
    let kind = pb::AnnouncementFilter {
        kind: pb::AnnouncementKind::Forecast.into(),
        ..Default::default()
    };
    assert_eq!(list(kind).await, vec![forecast_id.clone()]);
    let country = pb::AnnouncementFilter {
        country: "RUS".into(),
        ..Default::default()
    };
    assert_eq!(list(country).await, vec![meeting_id.clone()]);
    let org = pb::AnnouncementFilter {
        organization: "avtovaz".into(),
        ..Default::default()
    };
    assert_eq!(list(org).await, vec![meeting_id.clone()]);
    let person_org = pb::AnnouncementFilter {
        organization: "Small Industries and Industrial Parks Organization of Iran".into(),
        ..Default::default()
    };
    assert_eq!(list(person_org).await, vec![meeting_id.clone()]);
    let person = pb::AnnouncementFilter {
        person: "abbas aliabadi".into(),
        ..Default::default()
    };
    assert_eq!(list(person).await, vec![forecast_id.clone()]);
    let text = pb::AnnouncementFilter {
        text: "MIMS".into(),
        ..Default::default()
    };
    assert_eq!(list(text).await, vec![meeting_id.clone()]);
    let august = pb::AnnouncementFilter {
        announced_within: Some(pb::DateRange {
            start: Some(date(2024, 8, 1)),
            end: Some(date(2024, 8, 31)),
        }),
        ..Default::default()
    };
    assert_eq!(list(august).await, vec![meeting_id]);
    let none = pb::AnnouncementFilter {
        country: "FRA".into(),
        ..Default::default()
    };
    assert!(list(none).await.is_empty());
}

#[tokio::test]
async fn invalid_announcements_name_their_fields() {
    let server = TestServer::start().await;
    let mut client = server.announcements().await;
    let cases: Vec<Case<pb::Announcement>> = vec![
        ("announcement.kind", Box::new(|a| a.kind = 0)),
        ("announcement.kind", Box::new(|a| a.kind = 42)),
        (
            "announcement.headline",
            Box::new(|a| a.headline = " ".into()),
        ),
        (
            "announcement.body",
            Box::new(|a| a.body = "b".repeat(20_001)),
        ),
        (
            "announcement.countries[1]",
            Box::new(|a| a.countries[1] = "SUN".into()),
        ),
        (
            "announcement.countries",
            Box::new(|a| a.countries = vec!["IRN".into(); 51]),
        ),
        (
            "announcement.organizations[0]",
            Box::new(|a| a.organizations[0].clear()),
        ),
        (
            "announcement.people[0].name",
            Box::new(|a| a.people[0].name.clear()),
        ),
        (
            "announcement.event.name",
            Box::new(|a| a.event.as_mut().unwrap().name.clear()),
        ),
        (
            "announcement.event.start_date",
            Box::new(|a| a.event.as_mut().unwrap().start_date = Some(date(2024, 0, 19))),
        ),
        (
            "announcement.announced_date",
            Box::new(|a| a.announced_date = Some(date(2023, 2, 29))),
        ),
        ("announcement.source", Box::new(|a| a.source = None)),
        (
            "announcement.related_trade_record_ids[0]",
            Box::new(|a| a.related_trade_record_ids = vec!["x".into()]),
        ),
        (
            "announcement.related_trade_record_ids[0]",
            Box::new(|a| a.related_trade_record_ids = vec![ulid::Ulid::new().to_string()]),
        ),
        (
            "announcement.forecast.due",
            Box::new(|a| {
                a.forecast = Some(pb::Forecast {
                    subject: "x".into(),
                    target: Some(pb::Quantity {
                        amount: 1.0,
                        unit: "cars".into(),
                        bound: 0,
                    }),
                    ..Default::default()
                })
            }),
        ),
        (
            "announcement.forecast.target",
            Box::new(|a| {
                a.forecast = Some(pb::Forecast {
                    subject: "x".into(),
                    due: Some(pb::forecast::Due::DueDate(date(2025, 3, 20))),
                    ..Default::default()
                })
            }),
        ),
        (
            "announcement.forecast.country",
            Box::new(|a| {
                a.forecast = Some(pb::Forecast {
                    subject: "x".into(),
                    country: "Iran".into(),
                    target: Some(pb::Quantity {
                        amount: 1.0,
                        unit: "cars".into(),
                        bound: 0,
                    }),
                    due: Some(pb::forecast::Due::DueDate(date(2025, 3, 20))),
                    due_by: None,
                })
            }),
        ),
    ];
    for (field, mutate) in &cases {
        let mut input = meeting();
        mutate(&mut input);
        let status = client
            .create_announcement(create_announcement(input))
            .await
            .unwrap_err();
        assert_names_field(&status, field);
    }
    let bad_filter = pb::AnnouncementFilter {
        kind: 77,
        country: "xx".into(),
        text: "t".repeat(201),
        ..Default::default()
    };
    let status = client
        .list_announcements(pb::ListAnnouncementsRequest {
            filter: Some(bad_filter),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        vec!["filter.kind", "filter.country", "filter.text"]
    );
    let backwards = pb::AnnouncementFilter {
        announced_within: Some(pb::DateRange {
            start: Some(date(2024, 9, 1)),
            end: Some(date(2024, 8, 1)),
        }),
        ..Default::default()
    };
    let status = client
        .list_announcements(pb::ListAnnouncementsRequest {
            filter: Some(backwards),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        vec!["filter.announced_within.end"]
    );
    assert_eq!(server.app.counts().announcements, 0);
}

#[tokio::test]
async fn related_records_are_checked_and_protected() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    let record_id = trade
        .create_trade_record(create(record("IRN", "RUS", "8708", 2023, 66_000_000)))
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap()
        .id;
    let mut client = server.announcements().await;
    let mut input = meeting();
    input.related_trade_record_ids = vec![record_id.clone()];
    let stored = client
        .create_announcement(pb::CreateAnnouncementRequest {
            announcement: Some(input.clone()),
            request_id: "a-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let retried = client
        .create_announcement(pb::CreateAnnouncementRequest {
            announcement: Some(input),
            request_id: "a-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !stored.replayed && retried.replayed,
        "the retry says it is one"
    );
    assert_eq!(stored.announcement, retried.announcement);
    assert_eq!(server.app.counts().announcements, 1);

    let status = trade
        .delete_trade_record(pb::DeleteTradeRecordRequest {
            id: record_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    client
        .delete_announcement(pb::DeleteAnnouncementRequest {
            id: stored.announcement.unwrap().id,
        })
        .await
        .unwrap();
    trade
        .delete_trade_record(pb::DeleteTradeRecordRequest { id: record_id })
        .await
        .unwrap();
}

#[tokio::test]
async fn watch_replays_then_delivers_new_announcements() {
    let server = TestServer::start().await;
    let mut client = server.announcements().await;
    client
        .create_announcement(create_announcement(meeting()))
        .await
        .unwrap();
    client
        .create_announcement(create_announcement(forecast()))
        .await
        .unwrap();
    let mut stream = client
        .watch_announcements(pb::WatchAnnouncementsRequest {
            filter: Some(pb::AnnouncementFilter {
                country: "IRN".into(),
                ..Default::default()
            }),
            start: Some(pb::watch_announcements_request::Start::AfterSequence(1)),
            heartbeat_interval: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || stream.next().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(next().await, Event::Announcement(a) if a.sequence == 2));
    assert!(matches!(
        next().await,
        Event::CaughtUp(pb::CaughtUp { head_sequence: 2 })
    ));
    client
        .create_announcement(create_announcement(meeting()))
        .await
        .unwrap();
    assert!(matches!(next().await, Event::Announcement(a) if a.sequence == 3));
}
