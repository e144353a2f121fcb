//! Streams over their life: shutdown ends them with their resume point,
//! heartbeats carry the head sequence on the wire, and subscriptions past
//! the maximum are refused.

use std::time::Duration;

use crate::common::*;
use crate::streams::{LIMIT, publish_n, subscribe_after};
use tokio_stream::StreamExt;
use tonic::Code;
use tradewire::pb;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::subscribe_export_reports_request::Start;
use tradewire::pb::subscribe_export_reports_response::Event;
use tradewire::{Config, HubConfig};

#[tokio::test]
async fn shutdown_ends_100_open_streams_with_unavailable_and_their_resume_point() {
    let grace = Duration::from_secs(5);
    let mut server = TestServer::with_config(Config {
        shutdown_grace: grace,
        ..Config::default()
    })
    .await;
    let mut client = server.reports().await;
    publish_n(&mut client, 3).await;
    let mut streams = Vec::new();
    for i in 0..100u64 {
        let mut client = ExportReportServiceClient::new(server.channel().await);
        let mut s = client
            .subscribe_export_reports(subscribe_after(i % 4, None, None))
            .await
            .unwrap()
            .into_inner();
        loop {
            if let Event::CaughtUp(c) = s.next().await.unwrap().unwrap().event.unwrap() {
                assert_eq!(c.head_sequence, 3);
                break;
            }
        }
        streams.push(s);
    }
    assert_eq!(*server.subscribers().borrow(), 100);

    let started = tokio::time::Instant::now();
    let task = server.begin_shutdown();
    for mut s in streams {
        let status = tokio::time::timeout(grace, s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("resume after sequence 3"),
            "{}",
            status.message()
        );
        assert_eq!(
            status.metadata().get("tradewire-resume-after").unwrap(),
            "3"
        );
    }
    tokio::time::timeout(grace, task)
        .await
        .expect("server finished within the grace period")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < grace);
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_within_the_grace_period() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let grace = Duration::from_secs(1);
    let mut server = TestServer::with_config(Config {
        shutdown_grace: grace,
        ..Config::default()
    })
    .await;
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "tradewire.v1.ExportReportService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    let task = server.begin_shutdown();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    // The open health watch is a stream tonic would wait on forever; the
    // grace period bounds it.
    tokio::time::timeout(grace * 3, task)
        .await
        .expect("hard stop after grace")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn heartbeats_carry_the_head_sequence() {
    let server = TestServer::with_config(Config {
        hub: HubConfig {
            heartbeat: Duration::from_millis(200),
            ..HubConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut client = server.reports().await;
    publish_n(&mut client, 3).await;
    let nothing = pb::TradeFilter {
        exporter: "FRA".into(),
        ..Default::default()
    };
    let mut stream = client
        .subscribe_export_reports(pb::SubscribeExportReportsRequest {
            filter: Some(nothing),
            start: Some(Start::FromNow(pb::FromNow {})),
            heartbeat_interval: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(LIMIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .event
            .unwrap()
    };
    assert!(matches!(
        next().await,
        Event::CaughtUp(pb::CaughtUp { head_sequence: 3 })
    ));
    assert!(matches!(
        next().await,
        Event::Heartbeat(pb::Heartbeat { head_sequence: 3 })
    ));
    publish_n(&mut client, 2).await;
    assert!(matches!(
        next().await,
        Event::Heartbeat(pb::Heartbeat { head_sequence: 5 })
    ));

    let status = client
        .subscribe_export_reports(subscribe_after(0, None, Some(50)))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["heartbeat_interval"]);
}

#[tokio::test]
async fn subscriptions_past_the_maximum_are_resource_exhausted() {
    let server = TestServer::with_config(Config {
        hub: HubConfig {
            max_subscribers: 3,
            ..HubConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut client = server.reports().await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            client
                .subscribe_export_reports(subscribe_after(0, None, None))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let status = client
        .subscribe_export_reports(subscribe_after(0, None, None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let mut announcements = server.announcements().await;
    let status = announcements
        .watch_announcements(pb::WatchAnnouncementsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "the limit covers every stream"
    );
    open.pop();
    let mut count = server.subscribers();
    wait_for(&mut count, Duration::from_secs(1), |n| *n == 2).await;
    client
        .subscribe_export_reports(subscribe_after(0, None, None))
        .await
        .unwrap();
}
