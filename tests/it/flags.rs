//! Each `serve` flag and its `TRADEWIRE_*` environment mirror, through the
//! real binary's `--print-config`: the flag changes the configuration,
//! the mirror changes it the same way, and every flag `--help` lists is
//! in the table.

use std::process::Command;

/// A flag, its mirror, a value that is not the default (empty for a
/// switch), and the flags it needs beside it.
const FLAGS: &[(&str, &str, &str, &[&str])] = &[
    ("--listen", "TRADEWIRE_LISTEN", "127.0.0.1:6000", &[]),
    ("--demo", "TRADEWIRE_DEMO", "", &[]),
    ("--log-format", "TRADEWIRE_LOG_FORMAT", "json", &[]),
    ("--retention", "TRADEWIRE_RETENTION", "7", &[]),
    ("--max-subscribers", "TRADEWIRE_MAX_SUBSCRIBERS", "8", &[]),
    (
        "--heartbeat-interval",
        "TRADEWIRE_HEARTBEAT_INTERVAL",
        "1500ms",
        &[],
    ),
    ("--shutdown-grace", "TRADEWIRE_SHUTDOWN_GRACE", "3s", &[]),
    (
        "--broadcast-capacity",
        "TRADEWIRE_BROADCAST_CAPACITY",
        "9",
        &[],
    ),
    ("--data-dir", "TRADEWIRE_DATA_DIR", "/tmp/elsewhere", &[]),
    ("--in-memory", "TRADEWIRE_IN_MEMORY", "", &[]),
    (
        "--backend",
        "TRADEWIRE_BACKEND",
        "jetstream",
        &["--nats-url=nats://127.0.0.1:4222"],
    ),
    (
        "--nats-url",
        "TRADEWIRE_NATS_URL",
        "nats://127.0.0.1:4333",
        &["--backend=jetstream"],
    ),
    (
        "--nats-stream",
        "TRADEWIRE_NATS_STREAM",
        "LOG2",
        &["--backend=jetstream", "--nats-url=nats://127.0.0.1:4222"],
    ),
    (
        "--nats-replicas",
        "TRADEWIRE_NATS_REPLICAS",
        "3",
        &["--backend=jetstream", "--nats-url=nats://127.0.0.1:4222"],
    ),
    (
        "--nats-snapshot-every",
        "TRADEWIRE_NATS_SNAPSHOT_EVERY",
        "17",
        &["--backend=jetstream", "--nats-url=nats://127.0.0.1:4222"],
    ),
    ("--fsync", "TRADEWIRE_FSYNC", "never", &[]),
    (
        "--fsync-interval",
        "TRADEWIRE_FSYNC_INTERVAL",
        "250ms",
        &["--fsync=interval"],
    ),
    ("--repair", "TRADEWIRE_REPAIR", "", &[]),
    ("--tcp-keepalive", "TRADEWIRE_TCP_KEEPALIVE", "0s", &[]),
    (
        "--snapshot-after-bytes",
        "TRADEWIRE_SNAPSHOT_AFTER_BYTES",
        "4096",
        &[],
    ),
    (
        "--tls-cert",
        "TRADEWIRE_TLS_CERT",
        "c.pem",
        &["--tls-key=k.pem"],
    ),
    (
        "--tls-key",
        "TRADEWIRE_TLS_KEY",
        "k.pem",
        &["--tls-cert=c.pem"],
    ),
    (
        "--tls-client-ca",
        "TRADEWIRE_TLS_CLIENT_CA",
        "ca.pem",
        &["--tls-cert=c.pem", "--tls-key=k.pem"],
    ),
    ("--auth-tokens", "TRADEWIRE_AUTH_TOKENS", "tokens", &[]),
    (
        "--allow-anonymous-read",
        "TRADEWIRE_ALLOW_ANONYMOUS_READ",
        "",
        &["--auth-tokens=tokens"],
    ),
    ("--max-connections", "TRADEWIRE_MAX_CONNECTIONS", "11", &[]),
    (
        "--handshake-timeout",
        "TRADEWIRE_HANDSHAKE_TIMEOUT",
        "4s",
        &[],
    ),
    (
        "--max-concurrent-streams",
        "TRADEWIRE_MAX_CONCURRENT_STREAMS",
        "12",
        &[],
    ),
    ("--receive-timeout", "TRADEWIRE_RECEIVE_TIMEOUT", "5s", &[]),
    (
        "--max-message-bytes",
        "TRADEWIRE_MAX_MESSAGE_BYTES",
        "13",
        &[],
    ),
    ("--max-in-flight", "TRADEWIRE_MAX_IN_FLIGHT", "14", &[]),
    ("--unary-deadline", "TRADEWIRE_UNARY_DEADLINE", "6s", &[]),
    (
        "--max-subscribers-per-connection",
        "TRADEWIRE_MAX_SUBSCRIBERS_PER_CONNECTION",
        "15",
        &[],
    ),
    (
        "--max-subscribers-per-token",
        "TRADEWIRE_MAX_SUBSCRIBERS_PER_TOKEN",
        "16",
        &[],
    ),
    (
        "--metrics-listen",
        "TRADEWIRE_METRICS_LISTEN",
        "127.0.0.1:9000",
        &[],
    ),
    ("--worker-threads", "TRADEWIRE_WORKER_THREADS", "1", &[]),
    (
        "--otlp-endpoint",
        "TRADEWIRE_OTLP_ENDPOINT",
        "http://127.0.0.1:4317",
        &[],
    ),
];

/// `tradewire serve --print-config` with `args` and only `env` set; its
/// output, or its error.
fn run(args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_tradewire"))
        .arg("serve")
        .arg("--print-config")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn printed(args: &[&str], env: &[(&str, &str)]) -> String {
    run(args, env).unwrap_or_else(|error| panic!("{args:?} {env:?}: {error}"))
}

fn try_printed(args: &[&str], env: &[(&str, &str)]) -> Option<String> {
    run(args, env).ok()
}

#[test]
fn each_flag_and_its_environment_mirror_reach_the_config_alike() {
    for (flag, env, value, beside) in FLAGS {
        // A flag that another one requires (--nats-url, --tls-cert and
        // --tls-key) has no baseline without it: its baseline is the same
        // flag with another value.
        let baseline = try_printed(beside, &[]).unwrap_or_else(|| {
            let other = format!("{flag}=other-{value}");
            printed(&[beside, &[other.as_str()][..]].concat(), &[])
        });
        let given = if value.is_empty() {
            flag.to_string()
        } else {
            format!("{flag}={value}")
        };
        let with_flag = printed(&[beside, &[given.as_str()][..]].concat(), &[]);
        assert_ne!(with_flag, baseline, "{flag} changes nothing");
        let mirrored = if value.is_empty() { "true" } else { value };
        let with_env = printed(beside, &[(env, mirrored)]);
        assert_eq!(with_env, with_flag, "{env}={mirrored} is not {given}");
    }
}

#[test]
fn the_table_holds_every_flag_of_serve() {
    let output = Command::new(env!("CARGO_BIN_EXE_tradewire"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    let listed: std::collections::BTreeSet<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(|c: char| !c.is_alphanumeric()))
        .map(|w| w.split('=').next().unwrap_or(w))
        .filter(|w| !["--help", "--print-config"].contains(w) && w.len() > 2)
        .collect();
    let table: std::collections::BTreeSet<&str> = FLAGS.iter().map(|f| f.0).collect();
    let missing: Vec<_> = listed.difference(&table).collect();
    assert!(missing.is_empty(), "flags without a row: {missing:?}");
    for (flag, env, _, _) in FLAGS {
        assert!(
            help.contains(&format!("[env: {env}")),
            "{flag}'s mirror {env} is not listed"
        );
    }
}
