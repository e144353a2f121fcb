//! The `tradewire` command line as a client, against a real server: tables
//! for people, JSON lines for scripts, and `reports watch` across a
//! restart.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tradewire::Config;

use crate::common::{TempDir, TestServer, durable};

/// Runs `tradewire ARGS` against `server`, off the runtime's thread (the
/// server answers on it).
async fn tradewire(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tradewire"));
    command
        .args(args)
        .env("TRADEWIRE_SERVER", format!("http://{}", server.addr));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run tradewire");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn lists_read_as_tables_and_as_json_lines() {
    let server = TestServer::with_config(Config {
        demo: true,
        ..Config::default()
    })
    .await;
    let (ok, table, _) = tradewire(&server, &["records", "list", "--exporter", "IRN"]).await;
    assert!(ok);
    assert!(table.contains("IRN→RUS"), "{table}");
    assert!(
        table.contains("$13,000,000") && table.contains("≥ $66,000,000"),
        "{table}"
    );

    let (ok, lines, _) = tradewire(&server, &["reports", "list", "--json"]).await;
    assert!(ok);
    let reports: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["sequence"], "1");
    assert_eq!(reports[1]["period"]["label"], "1403-Q1 SH");

    let (ok, _, error) = tradewire(&server, &["records", "get", "not-an-id"]).await;
    assert!(!ok);
    assert!(error.contains("InvalidArgument"), "{error}");
}

#[tokio::test]
async fn records_are_created_from_json_lines() {
    let server = TestServer::start().await;
    let dir = TempDir::new("cli-create");
    let file = dir.path().join("records.jsonl");
    let line = |year: i32| {
        format!(
            r#"{{"exporter":"IRN","importer":"RUS","hsCode":"8708","commodity":"auto parts","period":{{"calendarPeriod":{{"calendar":"CALENDAR_GREGORIAN","year":{year}}}}},"value":{{"value":{{"currencyCode":"USD","units":"13000000"}},"bound":"BOUND_EXACT"}},"source":{{"organization":"Iran Trade Promotion Organization"}}}}"#
        )
    };
    std::fs::write(
        &file,
        (2001..=2005).map(line).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let (ok, out, error) = tradewire(
        &server,
        &[
            "records",
            "create",
            "--from",
            file.to_str().unwrap(),
            "--batch",
            "2",
        ],
    )
    .await;
    assert!(ok, "{error}");
    assert_eq!(
        out.trim(),
        "created 5 trade records; 0 were already there (stored by an earlier run of this file)"
    );
    let (_, lines, _) = tradewire(&server, &["records", "list", "--json"]).await;
    assert_eq!(lines.lines().count(), 5);

    // A line that is not a TradeRecord is named, and nothing is sent.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{}\n{{\"exporter\": 7}}\n", line(2006))).unwrap();
    let (ok, _, error) = tradewire(
        &server,
        &["records", "create", "--from", bad.to_str().unwrap()],
    )
    .await;
    assert!(!ok);
    assert!(error.contains("line 2"), "{error}");
    let (_, lines, _) = tradewire(&server, &["records", "list", "--json"]).await;
    assert_eq!(lines.lines().count(), 5, "no partial write");
}

#[tokio::test]
async fn reports_watch_goes_on_across_a_restart() {
    let dir = TempDir::new("cli-watch");
    let server = TestServer::with_config(Config {
        demo: true,
        ..durable(dir.path())
    })
    .await;
    let addr = server.addr;
    let mut watch = Command::new(env!("CARGO_BIN_EXE_tradewire"))
        .args(["reports", "watch", "--after", "0"])
        .env("TRADEWIRE_SERVER", format!("http://{addr}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("run tradewire reports watch");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let lines = std::sync::Arc::new(std::sync::Mutex::new(lines));
    let next = || {
        let lines = std::sync::Arc::clone(&lines);
        async move {
            tokio::task::spawn_blocking(move || {
                lines
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(30))
                    .expect("a line in time")
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(
        next().await,
        "#1 IRN→RUS 8708 2023: ≥ $66,000,000 (≥ +407.69% on 2022)"
    );
    assert_eq!(
        next().await,
        "#2 IRN→RUS 8708 1403-Q1 SH: +100.00% on 1402-Q1 SH"
    );

    server.shutdown().await.unwrap();
    let server = TestServer::with_config_at(durable(dir.path()), addr).await;
    server
        .reports()
        .await
        .publish_export_report(crate::common::publish(crate::common::growth(2024)))
        .await
        .unwrap();
    let third = next().await;
    assert!(third.starts_with("#3 IRN→RUS 8708 2024"), "{third}");
    let _ = watch.kill();
    let _ = watch.wait();
}

#[tokio::test]
async fn summary_and_breakdown_read_as_tables_and_as_json() {
    let server = TestServer::with_config(Config {
        demo: true,
        ..Config::default()
    })
    .await;
    let seed = [
        "--exporter",
        "IRN",
        "--importer",
        "RUS",
        "--hs-prefix",
        "8708",
    ];
    let (ok, table, _) = tradewire(
        &server,
        &[&["summary", "--from", "2022", "--to", "2023"][..], &seed].concat(),
    )
    .await;
    assert!(ok);
    let row_2023 = table
        .lines()
        .find(|l| l.contains("2023"))
        .expect("a 2023 row");
    assert!(
        row_2023.contains("≥ $66,000,000") && row_2023.contains("≥ +407.69%"),
        "{table}"
    );

    let args = [
        &[
            "summary",
            "--calendar",
            "solar-hijri",
            "--by",
            "quarter",
            "--from",
            "1403",
            "--to",
            "1403",
            "--json",
        ][..],
        &seed,
    ]
    .concat();
    let (ok, lines, _) = tradewire(&server, &args).await;
    assert!(ok);
    let buckets: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(buckets.len(), 4);
    assert_eq!(buckets[0]["period"]["label"], "1403-Q1 SH");
    assert_eq!(buckets[0]["changeFromYearEarlier"]["stated"], true);

    let (ok, table, _) = tradewire(
        &server,
        &["breakdown", "--exporter", "IRN", "--year", "2023"],
    )
    .await;
    assert!(ok);
    assert!(
        table.contains("RUS") && table.contains("100.00%"),
        "{table}"
    );

    let (ok, _, error) = tradewire(&server, &["summary", "--from", "2023", "--to", "2022"]).await;
    assert!(!ok);
    assert!(error.contains("last_year"), "{error}");
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    let server = TestServer::start().await;
    for shell in ["bash", "zsh", "fish"] {
        let (ok, script, _) = tradewire(&server, &["completions", shell]).await;
        assert!(ok, "{shell}");
        assert!(
            script.contains("records") && script.contains("watch"),
            "{shell}"
        );
    }
}
