//! Each flag reaches `Config` with the value given, and without flags the
//! binary's `Config` is the library's default.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Serve {
    #[command(flatten)]
    args: ServeArgs,
}

fn parse(flags: &[&str]) -> ServeArgs {
    let argv = std::iter::once("serve").chain(flags.iter().copied());
    Serve::try_parse_from(argv).unwrap().args
}

#[test]
fn without_flags_the_config_is_the_librarys_default() {
    let in_memory = parse(&["--in-memory"]).config();
    assert_eq!(format!("{in_memory:?}"), format!("{:?}", Config::default()));
    let durable_default = Config {
        store: StoreConfig {
            durable: Some(DurableConfig::new(DurableConfig::DEFAULT_DIR)),
            ..StoreConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(
        format!("{:?}", parse(&[]).config()),
        format!("{durable_default:?}")
    );
}

#[test]
fn every_flag_reaches_the_config() {
    let args = parse(&[
        "--demo",
        "--retention=7",
        "--max-subscribers=8",
        "--heartbeat-interval=1500ms",
        "--shutdown-grace=3s",
        "--broadcast-capacity=9",
        "--data-dir=/tmp/elsewhere",
        "--fsync=interval",
        "--fsync-interval=250ms",
        "--repair",
        "--tcp-keepalive=2m",
        "--snapshot-after-bytes=4096",
        "--tls-cert=c.pem",
        "--tls-key=k.pem",
        "--tls-client-ca=ca.pem",
        "--auth-tokens=tokens",
        "--allow-anonymous-read",
        "--max-connections=11",
        "--handshake-timeout=4s",
        "--max-concurrent-streams=12",
        "--receive-timeout=5s",
        "--max-message-bytes=13",
        "--max-in-flight=14",
        "--unary-deadline=6s",
        "--max-subscribers-per-connection=15",
        "--max-subscribers-per-token=16",
        "--metrics-listen=127.0.0.1:9000",
        "--otlp-endpoint=http://127.0.0.1:4317",
    ]);
    let config = args.config();
    let secs = Duration::from_secs;
    assert!(config.demo);
    assert_eq!(config.store.retention, 7);
    assert_eq!(config.hub.max_subscribers, 8);
    assert_eq!(config.hub.heartbeat, Duration::from_millis(1500));
    assert_eq!(config.shutdown_grace, secs(3));
    assert_eq!(config.store.broadcast_capacity, 9);
    let durable = config.store.durable.as_ref().unwrap();
    assert_eq!(durable.dir, Path::new("/tmp/elsewhere"));
    assert_eq!(
        durable.fsync,
        FsyncPolicy::Interval(Duration::from_millis(250))
    );
    assert!(durable.repair);
    assert_eq!(durable.snapshot_after_bytes, 4096);
    assert!(config.store.jetstream.is_none());
    assert_eq!(config.tcp_keepalive, Some(secs(120)));
    let tls = config.tls.as_ref().unwrap();
    assert_eq!(
        (&tls.cert, &tls.key, &tls.client_ca),
        (
            &PathBuf::from("c.pem"),
            &PathBuf::from("k.pem"),
            &Some(PathBuf::from("ca.pem"))
        )
    );
    assert_eq!(config.auth_tokens, Some(PathBuf::from("tokens")));
    assert!(config.allow_anonymous_read);
    let limits = &config.limits;
    assert_eq!(limits.max_connections, 11);
    assert_eq!(limits.handshake_timeout, secs(4));
    assert_eq!(limits.max_concurrent_streams, 12);
    assert_eq!(limits.receive_timeout, secs(5));
    assert_eq!(limits.max_message_bytes, 13);
    assert_eq!(limits.max_in_flight, 14);
    assert_eq!(limits.unary_deadline, secs(6));
    assert_eq!(config.hub.max_subscribers_per_connection, 15);
    assert_eq!(config.hub.max_subscribers_per_token, 16);
    assert_eq!(
        config.metrics_listen,
        Some("127.0.0.1:9000".parse().unwrap())
    );
    assert!(config.trace_calls);

    let replica = parse(&[
        "--backend=jetstream",
        "--nats-url=nats://127.0.0.1:4222,nats://127.0.0.1:4223",
        "--nats-stream=LOG2",
        "--nats-replicas=3",
        "--nats-snapshot-every=17",
    ])
    .config();
    assert!(replica.store.durable.is_none());
    let jetstream = replica.store.jetstream.unwrap();
    assert_eq!(
        jetstream.urls,
        ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
    );
    assert_eq!(jetstream.stream, "LOG2");
    assert_eq!(jetstream.replicas, 3);
    assert_eq!(jetstream.snapshot_every, 17);

    let off = parse(&["--in-memory", "--tcp-keepalive=0s", "--fsync=never"]).config();
    assert!(off.store.durable.is_none() && off.store.jetstream.is_none());
    assert_eq!(off.tcp_keepalive, None);
    let never = parse(&["--fsync=never"]).config();
    assert_eq!(never.store.durable.unwrap().fsync, FsyncPolicy::Never);
}

#[test]
fn durations_print_as_they_parse() {
    for text in ["250ms", "1500ms", "15s", "0s", "2m", "90s"] {
        let span: Span = text.parse().unwrap();
        assert_eq!(span.to_string(), text);
    }
    assert_eq!("2".parse::<Span>().unwrap(), Span(Duration::from_secs(2)));
    assert!("soon".parse::<Span>().is_err());
}
