//! Replicas when something fails: NATS unreachable, a replica killed under
//! its subscribers, one NATS node of three lost while writes go on.

use super::*;

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
