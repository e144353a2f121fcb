//! The `jetstream` backend: replicas over one log on real nats-server
//! processes (one node, or a cluster of three). Each test says so and
//! passes without running on a machine without nats-server, and fails
//! under `TRADEWIRE_REQUIRE_NATS=1` (CI).

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
async fn a_nats_outage_refuses_writes_keeps_reads_and_ends_without_a_restart() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let url = nats.url();
    let mut server = ServerProcess::start(&[
        "--backend".as_ref(),
        "jetstream".as_ref(),
        "--nats-url".as_ref(),
        url.as_ref(),
    ]);
    let on = Client::connect(&format!("http://{}", server.addr))
        .await
        .unwrap();
    let stored = on
        .trade()
        .create_trade_record(create(record("IRN", "RUS", "8708", 2022, 13_000_000), ""))
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();

    nats.stop();
    let refused = on
        .trade()
        .create_trade_record(create(
            record("IRN", "RUS", "8708", 2023, 66_000_000),
            "during",
        ))
        .await
        .expect_err("no write without the log");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("log position"), "{refused:?}");
    let read = on
        .trade()
        .get_trade_record(pb::GetTradeRecordRequest {
            id: stored.id.clone(),
        })
        .await
        .expect("reads go on");
    assert_eq!(read.into_inner().trade_record, Some(stored));

    nats.restart();
    server.wait_for_log("NATS connected");
    let after = on
        .trade()
        .create_trade_record(create(
            record("IRN", "RUS", "8708", 2023, 66_000_000),
            "during",
        ))
        .await
        .expect("writes resume without a restart");
    let after = after.into_inner().trade_record.unwrap();
    assert_eq!(
        after.value,
        Some(crate::common::usd(66_000_000, pb::Bound::Exact))
    );
}

/// A TCP forwarder standing in for a load balancer: new connections go to
/// the current target.
async fn balancer(target: Arc<Mutex<SocketAddr>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = *target.lock().unwrap();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_subscriber_resumes_on_the_other_replica_when_one_is_killed() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let url = nats.url();
    let args = [
        "--backend".as_ref(),
        "jetstream".as_ref(),
        "--nats-url".as_ref(),
        url.as_ref(),
    ];
    let mut a = ServerProcess::start(&args);
    let b = ServerProcess::start(&args);
    let target = Arc::new(Mutex::new(a.addr));
    let front = balancer(Arc::clone(&target)).await;
    let options = ClientOptions {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..ClientOptions::default()
    };
    let subscriber = Client::connect_with(&format!("http://{front}"), options)
        .await
        .unwrap();
    let writer = Client::connect(&format!("http://{}", b.addr))
        .await
        .unwrap();
    let mut subscription = subscriber.subscribe_reports(None, Some(0));
    let mut seen = Vec::new();
    let publish_n = |n: usize, tag: &'static str| {
        let writer = writer.clone();
        async move {
            for i in 0..n {
                writer
                    .reports()
                    .publish_export_report(publish(report(
                        "IRN",
                        "RUS",
                        "8708",
                        &format!("{tag}{i}"),
                    )))
                    .await
                    .unwrap();
            }
        }
    };
    publish_n(3, "before").await;
    while seen.len() < 3 {
        let r = timeout(LIMIT, subscription.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(r.sequence);
    }
    a.kill();
    *target.lock().unwrap() = b.addr;
    publish_n(3, "after").await;
    while seen.len() < 6 {
        let r = timeout(LIMIT, subscription.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(r.sequence);
    }
    assert_eq!(
        seen,
        vec![1, 2, 3, 4, 5, 6],
        "no gap, no duplicate across replicas"
    );
}

#[tokio::test]
async fn losing_one_of_three_nats_nodes_loses_no_acknowledged_write() {
    let Some(mut nodes) = NatsServer::cluster() else {
        return;
    };
    let urls: Vec<String> = nodes.iter().map(NatsServer::url).collect();
    let rotated = |first: usize| {
        let mut u = urls.clone();
        u.rotate_left(first);
        u
    };
    // Each replica waits for the new cluster to elect its JetStream leader.
    let mut servers = Vec::new();
    for first in [1, 2] {
        servers.push(TestServer::with_config(replica_config(rotated(first), 0, 3)).await);
    }
    let (on_a, on_b) = (client(&servers[0]).await, client(&servers[1]).await);

    let (under_way, writes_under_way) = tokio::sync::oneshot::channel::<()>();
    let writer = |client: Client,
                  tag: &'static str,
                  mut under_way: Option<tokio::sync::oneshot::Sender<()>>| {
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..40 {
                let request = create(
                    record("IRN", "RUS", "8708", 1900 + i, 1),
                    &format!("{tag}-{i}"),
                );
                // A client's retry policy: the same request id again.
                for _attempt in 0..60 {
                    match client.trade().create_trade_record(request.clone()).await {
                        Ok(answer) => {
                            acknowledged.push(answer.into_inner().trade_record.unwrap().id);
                            break;
                        }
                        Err(status) if status.code() == Code::Unavailable => {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(status) => panic!("{tag}-{i}: {status:?}"),
                    }
                }
                if i == 10
                    && let Some(under_way) = under_way.take()
                {
                    let _ = under_way.send(());
                }
            }
            acknowledged
        })
    };
    let writing_a = writer(on_a.clone(), "a", Some(under_way));
    let writing_b = writer(on_b.clone(), "b", None);
    // Stop a node once writes are under way.
    timeout(LIMIT, writes_under_way).await.unwrap().unwrap();
    nodes[0].stop();
    let acknowledged: Vec<String> = [writing_a.await.unwrap(), writing_b.await.unwrap()].concat();
    assert_eq!(
        acknowledged.len(),
        80,
        "every write was acknowledged in the end"
    );

    caught_up(&on_a, &on_b).await;
    caught_up(&on_b, &on_a).await;
    let (on_a_ids, on_b_ids) = (record_ids(&on_a).await, record_ids(&on_b).await);
    assert_eq!(on_a_ids, on_b_ids, "the replicas converge");
    for id in &acknowledged {
        assert!(on_a_ids.contains(id), "acknowledged record {id} is kept");
    }
    assert_eq!(on_a_ids.len(), 80, "each request id once");
}
