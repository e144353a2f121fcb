//! The `jetstream` backend: replicas over one log on real nats-server
//! processes (one node, or a cluster of three). Each test says so and
//! passes without running on a machine without nats-server, and fails
//! under `TRADEWIRE_REQUIRE_NATS=1` (CI). Failures (NATS outages, a
//! killed replica, a lost NATS node) are in `failover.rs`.

mod failover;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use prost::Message;
use tokio::time::timeout;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tradewire::client::{Backoff, Client, ClientOptions};
use tradewire::pb;
use tradewire::{Config, JetStreamConfig};

use crate::common::binary::ServerProcess;
use crate::common::nats::NatsServer;
use crate::common::{TestServer, growth, publish, record, report};

const LIMIT: Duration = Duration::from_secs(30);

fn replica_config(urls: Vec<String>, snapshot_every: u64, replicas: usize) -> Config {
    let mut jetstream = JetStreamConfig::new(urls);
    jetstream.request_timeout = Duration::from_secs(3);
    jetstream.snapshot_every = snapshot_every;
    jetstream.replicas = replicas;
    let mut config = Config::default();
    config.store.jetstream = Some(jetstream);
    config
}

async fn replica(nats: &NatsServer) -> TestServer {
    TestServer::with_config(replica_config(vec![nats.url()], 0, 1)).await
}

async fn client(server: &TestServer) -> Client {
    Client::connect(&format!("http://{}", server.addr))
        .await
        .unwrap()
}

fn create(record: pb::TradeRecord, request_id: &str) -> pb::CreateTradeRecordRequest {
    pb::CreateTradeRecordRequest {
        trade_record: Some(record),
        request_id: request_id.into(),
    }
}

/// Waits until `follower` has applied everything written on `writer` so
/// far: a report published on `writer` after it all reaches a subscriber
/// of `follower`, and the log is applied in order.
async fn caught_up(writer: &Client, follower: &Client) {
    let mut subscription = follower.subscribe_reports(None, None);
    timeout(LIMIT, subscription.started())
        .await
        .expect("the subscription starts")
        .expect("it has a position");
    let marker = format!("marker {}", ulid::Ulid::new());
    let request = pb::PublishExportReportRequest {
        request_id: marker.clone(),
        ..publish(report("IRN", "RUS", "8708", &marker))
    };
    // A write may answer UNAVAILABLE while the replica catches up after a
    // NATS node was lost; a client retries it, under the same request id.
    let mut attempts = 0;
    let published = loop {
        match writer
            .reports()
            .publish_export_report(request.clone())
            .await
        {
            Ok(answer) => break answer.into_inner().export_report.unwrap(),
            Err(status) if status.code() == Code::Unavailable && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(status) => panic!("publish the marker: {status:?}"),
        }
    };
    loop {
        let seen = timeout(LIMIT, subscription.next())
            .await
            .expect("the marker arrives")
            .expect("the subscription goes on")
            .expect("no error");
        if seen.headline == marker {
            assert_eq!(
                seen.sequence, published.sequence,
                "the same sequence on both"
            );
            return;
        }
    }
}

/// Every page of `list`, encoded: what a client receives, byte for byte.
async fn all_pages(client: &Client) -> Vec<Vec<u8>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .trade()
            .list_trade_records(pb::ListTradeRecordsRequest {
                page_size: 7,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        token = page.next_page_token.clone();
        pages.push(page.encode_to_vec());
        if token.is_empty() {
            break;
        }
    }
    let reports = client
        .reports()
        .list_export_reports(pb::ListExportReportsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    pages.push(reports.encode_to_vec());
    let announcements = client
        .announcements()
        .list_announcements(pb::ListAnnouncementsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    pages.push(announcements.encode_to_vec());
    pages
}

async fn record_ids(client: &Client) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = client
            .trade()
            .list_trade_records(pb::ListTradeRecordsRequest {
                page_size: 500,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.trade_records.into_iter().map(|r| r.id));
        token = page.next_page_token;
        if token.is_empty() {
            return ids;
        }
    }
}

#[tokio::test]
async fn a_write_on_one_replica_is_read_on_the_other() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (a, b) = (replica(&nats).await, replica(&nats).await);
    let (on_a, on_b) = (client(&a).await, client(&b).await);

    let mut watching_b = on_b.subscribe_reports(None, None);
    timeout(LIMIT, watching_b.started()).await.unwrap();

    let stored = on_a
        .trade()
        .create_trade_record(create(record("IRN", "RUS", "8708", 2022, 13_000_000), ""))
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    // Read your writes: the writer has applied it when it answers.
    let get = pb::GetTradeRecordRequest {
        id: stored.id.clone(),
    };
    let on_writer = on_a.trade().get_trade_record(get.clone()).await.unwrap();
    assert_eq!(on_writer.into_inner().trade_record.as_ref(), Some(&stored));

    let published = on_a
        .reports()
        .publish_export_report(publish(growth(2023)))
        .await
        .unwrap()
        .into_inner()
        .export_report
        .unwrap();
    let seen = timeout(LIMIT, watching_b.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen, published, "B streams A's report, the same sequence");
    // The report came after the record in the log, so B has the record.
    let on_b_record = on_b.trade().get_trade_record(get).await.unwrap();
    assert_eq!(on_b_record.into_inner().trade_record, Some(stored.clone()));
    assert_eq!(
        published.baseline_trade_record_id, stored.id,
        "the report on A linked the record written on A"
    );

    // And the other way round.
    let from_b = on_b
        .trade()
        .create_trade_record(create(record("IRN", "RUS", "8708", 2021, 1), ""))
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    caught_up(&on_b, &on_a).await;
    let on_a_record = on_a
        .trade()
        .get_trade_record(pb::GetTradeRecordRequest {
            id: from_b.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(on_a_record.into_inner().trade_record, Some(from_b));
}

#[tokio::test]
async fn racing_replicas_store_each_request_id_once_and_leave_no_dangling_reference() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (a, b) = (replica(&nats).await, replica(&nats).await);
    let (on_a, on_b) = (client(&a).await, client(&b).await);

    // 30 request ids, each sent to both replicas at once.
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..30 {
        for (side, client) in [("a", on_a.clone()), ("b", on_b.clone())] {
            writes.spawn(async move {
                let answer = client
                    .trade()
                    .create_trade_record(create(
                        record("IRN", "RUS", "8708", 1990 + i, 1_000 + i64::from(i)),
                        &format!("race-{i}"),
                    ))
                    .await;
                (
                    i,
                    side,
                    answer.map(|r| r.into_inner().trade_record.unwrap().id),
                )
            });
        }
    }
    let mut ids = std::collections::BTreeMap::<i32, BTreeSet<String>>::new();
    while let Some(joined) = writes.join_next().await {
        let (i, side, answer) = joined.unwrap();
        let id = answer.unwrap_or_else(|s| panic!("write {i} on {side}: {s:?}"));
        ids.entry(i).or_default().insert(id);
    }
    assert!(
        ids.values().all(|set| set.len() == 1),
        "each id answered with one record: {ids:?}"
    );

    caught_up(&on_a, &on_b).await;
    caught_up(&on_b, &on_a).await;
    let (stored_a, stored_b) = (record_ids(&on_a).await, record_ids(&on_b).await);
    assert_eq!(stored_a.len(), 30, "each request id stored once");
    assert_eq!(stored_a, stored_b);

    // A delete racing with a publish that links the same record.
    let baseline = on_a
        .trade()
        .create_trade_record(create(record("IRN", "RUS", "8708", 2022, 13_000_000), ""))
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    caught_up(&on_a, &on_b).await;
    let delete = {
        let on_a = on_a.clone();
        let id = baseline.id.clone();
        tokio::spawn(async move {
            on_a.trade()
                .delete_trade_record(pb::DeleteTradeRecordRequest { id })
                .await
        })
    };
    let published = on_b
        .reports()
        .publish_export_report(publish(growth(2023)))
        .await;
    let deleted = delete.await.unwrap();
    let published = published
        .expect("the publish stores or links its figures")
        .into_inner();
    let report = published.export_report.unwrap();
    match &deleted {
        Ok(_) => assert_ne!(
            report.baseline_trade_record_id, baseline.id,
            "a report never refers to a deleted record"
        ),
        Err(status) => {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            assert_eq!(report.baseline_trade_record_id, baseline.id);
        }
    }
    caught_up(&on_b, &on_a).await;
    for client in [&on_a, &on_b] {
        for id in [&report.trade_record_id, &report.baseline_trade_record_id] {
            client
                .trade()
                .get_trade_record(pb::GetTradeRecordRequest { id: id.clone() })
                .await
                .unwrap_or_else(|s| panic!("the report's record {id} is there: {s:?}"));
        }
    }
}

#[tokio::test]
async fn a_late_replica_loads_a_snapshot_replays_and_serves_the_same_pages() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let a = TestServer::with_config(replica_config(vec![nats.url()], 5, 1)).await;
    let on_a = client(&a).await;
    for i in 0..40 {
        on_a.trade()
            .create_trade_record(create(
                record("IRN", "RUS", "8708", 1950 + i, 7 * i64::from(i) + 1),
                "",
            ))
            .await
            .unwrap();
        if i % 10 == 0 {
            on_a.reports()
                .publish_export_report(publish(report("IRN", "RUS", "8708", &format!("r{i}"))))
                .await
                .unwrap();
        }
    }
    on_a.announcements()
        .create_announcement(pb::CreateAnnouncementRequest {
            announcement: Some(crate::announcements::forecast()),
            request_id: String::new(),
        })
        .await
        .unwrap();

    // The log below an older snapshot is purged: a late replica can only
    // start from a snapshot.
    let nats_client = async_nats::connect(nats.url()).await.unwrap();
    let context = async_nats::jetstream::new(nats_client);
    let mut stream = context.get_stream("TRADEWIRE_LOG").await.unwrap();
    let mut compacted = false;
    for _ in 0..100 {
        if stream.info().await.unwrap().state.first_sequence > 1 {
            compacted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(compacted, "the log was compacted behind a snapshot");

    let c = TestServer::with_config(replica_config(vec![nats.url()], 5, 1)).await;
    let mut health = HealthClient::new(c.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    loop {
        let status = timeout(LIMIT, watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if status.status() == ServingStatus::Serving {
            break;
        }
    }
    let on_c = client(&c).await;
    // Health said C had replayed the log as it was when C started, which
    // holds everything A wrote above.
    assert_eq!(all_pages(&on_a).await, all_pages(&on_c).await);
    assert_eq!(record_ids(&on_c).await.len(), 40);
}

#[tokio::test]
async fn the_test_clusters_sync_every_message_to_disk() {
    let Some(nodes) = NatsServer::cluster() else {
        return;
    };
    for node in &nodes {
        let varz = node.varz();
        let version = varz["version"].as_str().unwrap_or("").to_owned();
        let has_sync = version
            .split('.')
            .take(2)
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
            >= vec![2, 10];
        if has_sync {
            assert!(node.syncs_always(), "{version}: {:#}", varz["jetstream"]);
        } else {
            eprintln!("NOTE: nats-server {version} cannot sync every message");
        }
    }
}

/// `--demo` on replicas of one log loads the demo once: the first replica
/// loads it into the empty log, the next finds the log written, and so
/// does a replica started again, however few request ids they remember.
#[tokio::test]
async fn the_demo_loads_once_across_replicas_and_restarts() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let demo = || {
        let mut config = replica_config(vec![nats.url()], 0, 1);
        config.demo = true;
        config.store.request_id_capacity = 3;
        config
    };
    let a = TestServer::with_config(demo()).await;
    let loaded = a.app.counts();
    assert_eq!(
        (
            loaded.trade_records,
            loaded.export_reports,
            loaded.announcements
        ),
        (2, 2, 6)
    );
    let b = TestServer::with_config(demo()).await;
    assert_eq!(b.app.counts(), loaded, "B applied A's demo and loaded none");
    b.shutdown().await.unwrap();
    let b_again = TestServer::with_config(demo()).await;
    // A demo loaded again would show on B at once: a replica applies its
    // own writes before it answers them.
    assert_eq!(b_again.app.counts(), loaded, "nor on a restart");
}
