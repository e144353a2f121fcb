//! `tradewire::client`: unary calls with a token, and subscriptions that
//! see every sequence once across a server restart.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::timeout;
use tradewire::client::{Backoff, Client, ClientOptions, ReportSubscription, SubscriptionError};
use tradewire::pb;

use crate::common::binary::ServerProcess;
use crate::common::{TempDir, TestServer, durable, publish, report};
use crate::streams;

const LIMIT: Duration = Duration::from_secs(30);

fn quick_reconnects() -> ClientOptions {
    ClientOptions {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..ClientOptions::default()
    }
}

/// The error a subscription ends with, its first event.
async fn ending_error(subscription: &mut ReportSubscription) -> SubscriptionError {
    timeout(LIMIT, subscription.next())
        .await
        .expect("an event in time")
        .expect("an error before the end")
        .expect_err("an error, not a report")
}

/// Publishes `n` reports through the client, headlined `{prefix}{i}`.
async fn publish_reports(client: &Client, prefix: &str, n: usize) {
    for i in 0..n {
        client
            .reports()
            .publish_export_report(publish(report(
                "IRN",
                "RUS",
                "8708",
                &format!("{prefix}{i}"),
            )))
            .await
            .unwrap();
    }
}

async fn next_sequences(subscription: &mut ReportSubscription, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        let report = timeout(LIMIT, subscription.next())
            .await
            .expect("a report in time")
            .expect("the subscription goes on")
            .expect("no error");
        out.push(report.sequence);
    }
    out
}

#[tokio::test]
async fn a_subscription_sees_every_sequence_once_across_server_restarts() {
    let dir = TempDir::new("client-restart");
    let server = TestServer::with_config(durable(dir.path())).await;
    let addr = server.addr;
    let client = Client::connect_with(&format!("http://{addr}"), quick_reconnects())
        .await
        .unwrap();
    publish_reports(&client, "a", 3).await;
    let mut subscription = client.subscribe_reports(None, Some(0));
    let mut seen = next_sequences(&mut subscription, 3).await;

    // A graceful restart: the stream ends UNAVAILABLE with its resume
    // point.
    server.shutdown().await.unwrap();
    let server = TestServer::with_config_at(durable(dir.path()), addr).await;
    for i in 0..3 {
        server
            .reports()
            .await
            .publish_export_report(publish(report("IRN", "RUS", "8708", &format!("b{i}"))))
            .await
            .unwrap();
    }
    seen.extend(next_sequences(&mut subscription, 3).await);
    assert_eq!(
        seen,
        (1..=6).collect::<Vec<u64>>(),
        "each sequence once, in order"
    );
    assert_eq!(subscription.position(), Some(6));
    drop(server);
}

async fn publish_until_served(client: &Client, headline: &str) -> u64 {
    let mut reports = client.reports();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        // A request id makes the retry safe: a publish that did land is
        // answered again, not repeated.
        let mut request = publish(report("IRN", "RUS", "8708", headline));
        request.request_id = headline.to_owned();
        match reports.publish_export_report(request).await {
            Ok(r) => return r.into_inner().export_report.unwrap().sequence,
            // The call that meets the dead connection fails (UNKNOWN, broken
            // pipe); the channel then reconnects by itself once the server is
            // back.
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown
                ) =>
            {
                assert!(tokio::time::Instant::now() < deadline, "{status:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
}

#[tokio::test]
async fn a_subscription_sees_every_sequence_once_across_a_killed_server() {
    let dir = TempDir::new("client-kill");
    let args = [
        std::ffi::OsStr::new("--data-dir"),
        dir.path().as_os_str(),
        std::ffi::OsStr::new("--fsync"),
        std::ffi::OsStr::new("always"),
    ];
    let mut server = ServerProcess::start(&args);
    let addr = server.addr;
    let client = Client::connect_with(&format!("http://{addr}"), quick_reconnects())
        .await
        .unwrap();
    for i in 0..3 {
        publish_until_served(&client, &format!("a{i}")).await;
    }
    let mut subscription = client.subscribe_reports(None, Some(0));
    let mut seen = next_sequences(&mut subscription, 2).await;

    // SIGKILL mid-stream: no goodbye, the connection just breaks.
    server.kill();
    let server = ServerProcess::start_at(addr, &args);
    for i in 0..3 {
        publish_until_served(&client, &format!("b{i}")).await;
    }
    seen.extend(next_sequences(&mut subscription, 4).await);

    assert_eq!(
        seen,
        (1..=6).collect::<Vec<u64>>(),
        "each sequence once, in order"
    );
    drop(server);
}

#[tokio::test]
async fn a_resume_point_past_retention_ends_the_subscription_with_the_oldest_sequence() {
    let server = TestServer::with_config(streams::config(16, 3)).await;
    let client = Client::connect(&format!("http://{}", server.addr))
        .await
        .unwrap();
    publish_reports(&client, "r", 6).await;
    let mut subscription = client.subscribe_reports(None, Some(1));
    let error = ending_error(&mut subscription).await;
    assert!(
        matches!(
            error,
            SubscriptionError::NotRetained {
                after: 1,
                oldest_retained: 4
            }
        ),
        "{error:?}"
    );
    assert!(timeout(LIMIT, subscription.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_filtered_subscription_from_now_skips_what_came_before() {
    let server = TestServer::start().await;
    let client = Client::connect(&format!("http://{}", server.addr))
        .await
        .unwrap();
    let mut reports = client.reports();
    reports
        .publish_export_report(publish(report("IRN", "RUS", "8708", "before")))
        .await
        .unwrap();
    let mut subscription = client.subscribe_reports(
        Some(pb::TradeFilter {
            importer: "RUS".into(),
            ..Default::default()
        }),
        None,
    );
    // Once the stream has said where "now" is, what follows is live.
    assert_eq!(
        timeout(LIMIT, subscription.started()).await.unwrap(),
        Some(1)
    );
    for (importer, headline) in [("TUR", "elsewhere"), ("RUS", "after")] {
        reports
            .publish_export_report(publish(report("IRN", importer, "8708", headline)))
            .await
            .unwrap();
    }
    let next = timeout(LIMIT, subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((next.sequence, next.headline.as_str()), (3, "after"));
}

#[tokio::test]
async fn a_token_rides_on_every_call_and_a_refusal_ends_a_subscription() {
    let (server, [reader_token, ..], _dir) = crate::security::server_with_tokens(false).await;
    let url = format!("http://{}", server.addr);
    let reader = Client::connect_with(
        &url,
        ClientOptions {
            token: Some(reader_token),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    let listed = reader
        .trade()
        .list_trade_records(pb::ListTradeRecordsRequest::default())
        .await;
    assert!(listed.is_ok(), "{listed:?}");
    let anonymous = Client::connect(&url).await.unwrap();
    let mut subscription = anonymous.subscribe_reports(None, Some(0));
    let error = ending_error(&mut subscription).await;
    assert!(
        matches!(&error, SubscriptionError::Refused(s) if s.code() == tonic::Code::Unauthenticated),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_client_speaks_tls_to_a_server_signed_by_its_ca() {
    use crate::common::pki::Pki;
    use tradewire::client::ClientTls;
    let pki = Pki::new("client-tls");
    let (cert, key) = pki.server_files("a");
    let server = TestServer::with_config(tradewire::Config {
        tls: Some(tradewire::TlsFiles {
            cert,
            key,
            client_ca: None,
        }),
        ..tradewire::Config::default()
    })
    .await;
    let url = format!("https://{}", server.addr);
    let tls = |ca_pem: &str| ClientOptions {
        tls: Some(ClientTls {
            ca_pem: ca_pem.as_bytes().to_vec(),
            domain: Some("localhost".into()),
            identity: None,
        }),
        connect_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&url, tls(&pki.ca_pem)).await.unwrap();
    let status = client
        .trade()
        .get_trade_record(pb::GetTradeRecordRequest {
            id: "01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "served over TLS");

    let stranger = Pki::new("client-tls-stranger");
    assert!(
        Client::connect_with(&url, tls(&stranger.ca_pem))
            .await
            .is_err(),
        "a server signed by another CA is refused"
    );
}

#[tokio::test]
async fn unary_calls_carry_the_request_timeout() {
    use crate::fsync::SyncGate;
    let dir = TempDir::new("client-timeout");
    let mut config = durable(dir.path());
    let gate = SyncGate::install(&mut config);
    let server = TestServer::with_config(config).await;
    let client = Client::connect_with(
        &format!("http://{}", server.addr),
        ClientOptions {
            request_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    // The write waits in its fsync, which the gate holds past the timeout.
    gate.arm();
    let started = std::time::Instant::now();
    let status = client
        .trade()
        .create_trade_record(crate::common::create(crate::common::record(
            "IRN", "RUS", "8708", 2022, 1,
        )))
        .await
        .unwrap_err();
    // The server answers DEADLINE_EXCEEDED at the deadline the call
    // carried; tonic's own timer on the client may fire first, which it
    // reports as CANCELLED "Timeout expired".
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < LIMIT,
        "{waited:?}"
    );
    gate.release();
}

#[tokio::test]
async fn a_single_threaded_server_serves_calls_and_streams() {
    let server = ServerProcess::start(&[
        std::ffi::OsStr::new("--in-memory"),
        std::ffi::OsStr::new("--demo"),
        std::ffi::OsStr::new("--worker-threads"),
        std::ffi::OsStr::new("1"),
    ]);
    let client = Client::connect(&format!("http://{}", server.addr))
        .await
        .unwrap();
    let records = client
        .trade()
        .list_trade_records(pb::ListTradeRecordsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .trade_records;
    assert_eq!(records.len(), 2, "the seed's two yearly figures");
    let mut subscription = client.subscribe_reports(None, Some(0));
    assert_eq!(next_sequences(&mut subscription, 2).await, [1, 2]);
}

#[tokio::test]
async fn announcements_are_watched_with_the_same_contract() {
    use crate::announcements::{create_announcement, forecast};
    let dir = TempDir::new("client-announcements");
    let server = TestServer::with_config(durable(dir.path())).await;
    let addr = server.addr;
    let client = Client::connect_with(&format!("http://{addr}"), quick_reconnects())
        .await
        .unwrap();
    client
        .announcements()
        .create_announcement(create_announcement(forecast()))
        .await
        .unwrap();
    let mut watch = client.watch_announcements(None, Some(0));
    let first = timeout(LIMIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.sequence, 1);
    assert_eq!(first.headline, forecast().headline);

    server.shutdown().await.unwrap();
    let server = TestServer::with_config_at(durable(dir.path()), addr).await;
    server
        .announcements()
        .await
        .create_announcement(create_announcement(forecast()))
        .await
        .unwrap();
    let second = timeout(LIMIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.sequence, 2, "resumed after 1, across the restart");
}
