//! `records create --from` and `reports publish --from` run again after a
//! failure: the real binary as server (killed mid-import) and as client,
//! and every line of the file stored exactly once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::TempDir;
use crate::common::binary::ServerProcess;

/// A record line of the file; `n` makes its value, and so the line, unique.
fn record_line(n: usize) -> String {
    format!(
        r#"{{"exporter":"IRN","importer":"RUS","hsCode":"8708","commodity":"auto parts","period":{{"calendarPeriod":{{"calendar":"CALENDAR_GREGORIAN","year":2023}}}},"value":{{"value":{{"currencyCode":"USD","units":"{n}"}},"bound":"BOUND_EXACT"}},"source":{{"organization":"Bulk import test"}}}}"#
    )
}

fn cli(addr: SocketAddr, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tradewire"));
    command
        .args(args)
        .env("TRADEWIRE_SERVER", format!("http://{addr}"));
    command
}

/// Runs the CLI to its end: success, stdout, stderr.
fn run(addr: SocketAddr, args: &[&str]) -> (bool, String, String) {
    let output = cli(addr, args).output().expect("run tradewire");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn serve(addr: Option<SocketAddr>, data: &Path) -> ServerProcess {
    let args = [
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--fsync".as_ref(),
        "always".as_ref(),
    ];
    match addr {
        Some(addr) => ServerProcess::start_at(addr, &args),
        None => ServerProcess::start(&args),
    }
}

/// How many stored records carry each value (the `n` of `record_line`).
fn stored_values(addr: SocketAddr) -> BTreeMap<usize, usize> {
    let (ok, lines, error) = run(addr, &["records", "list", "--json", "--limit", "100000"]);
    assert!(ok, "{error}");
    let mut counts = BTreeMap::new();
    for line in lines.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let units: usize = record["value"]["value"]["units"]
            .as_str()
            .and_then(|u| u.parse().ok())
            .expect("units");
        *counts.entry(units).or_insert(0) += 1;
    }
    counts
}

#[test]
fn an_import_killed_halfway_and_run_again_stores_each_line_once() {
    const LINES: usize = 3000;
    let dir = TempDir::new("bulk-kill");
    let file = dir.path().join("records.jsonl");
    let text: Vec<String> = (1..=LINES).map(record_line).collect();
    std::fs::write(&file, text.join("\n")).unwrap();
    let data = dir.path().join("data");
    let mut server = serve(None, &data);
    let addr = server.addr;

    // The first run prints each batch's records as they are stored. Its
    // stdout is read only up to the first record, so it soon blocks on the
    // full pipe, long before the end of the file: the server is killed
    // while the import is under way.
    let file_arg = file.to_str().unwrap();
    let args = [
        "records", "create", "--from", file_arg, "--batch", "50", "--json",
    ];
    let mut first = cli(addr, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tradewire records create");
    let mut out = BufReader::new(first.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("Bulk import test"), "{line}");
    server.kill();
    let printed = 1 + out.lines().map_while(Result::ok).count();
    let failed = first.wait_with_output().unwrap();
    let error = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "the first run ended with the server gone"
    );
    assert!(error.contains("run the same command again"), "{error}");
    assert!(printed < LINES, "{printed} printed");
    eprintln!("killed after {printed} of {LINES} records were acknowledged");

    let server = serve(Some(addr), &data);
    let before = stored_values(server.addr);
    assert!(before.len() >= printed, "what was acknowledged is stored");
    let (ok, summary, error) = run(
        server.addr,
        &["records", "create", "--from", file_arg, "--batch", "50"],
    );
    assert!(ok, "{error}");
    let after = stored_values(server.addr);
    let twice: Vec<usize> = after
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    let missing: Vec<usize> = (1..=LINES).filter(|n| !after.contains_key(n)).collect();
    assert!(twice.is_empty(), "lines stored more than once: {twice:?}");
    assert!(missing.is_empty(), "lines not stored: {missing:?}");
    assert_eq!(after.len(), LINES, "nothing but the file's lines");
    let created = LINES - before.len();
    assert_eq!(
        summary.trim(),
        format!(
            "created {created} trade records; {} were already there (stored by an earlier run of this file)",
            before.len()
        )
    );
}

#[test]
fn reports_published_again_from_the_same_file_are_not_published_twice() {
    let dir = TempDir::new("bulk-reports");
    let file = dir.path().join("reports.jsonl");
    let report = |year: i32| {
        format!(
            r#"{{"headline":"Exports in {year}","exporter":"IRN","importer":"RUS","hsCode":"8708","commodity":"auto parts","period":{{"calendarPeriod":{{"calendar":"CALENDAR_GREGORIAN","year":{year}}}}},"value":{{"value":{{"currencyCode":"USD","units":"21000000"}},"bound":"BOUND_APPROXIMATE"}},"source":{{"organization":"Bulk import test"}}}}"#
        )
    };
    // A blank line between: line numbers are the file's own.
    std::fs::write(&file, format!("{}\n\n{}\n", report(2024), report(2025))).unwrap();
    let data = dir.path().join("data");
    let server = serve(None, &data);
    let file_arg = file.to_str().unwrap();

    let (ok, out, error) = run(server.addr, &["reports", "publish", "--from", file_arg]);
    assert!(ok, "{error}");
    assert!(
        out.contains("#1 IRN→RUS 8708 2024") && out.contains("#2 IRN→RUS 8708 2025"),
        "{out}"
    );
    assert!(
        out.contains("published 2 export reports; 0 were already published"),
        "{out}"
    );

    // One more line at the end: only it is new.
    std::fs::write(
        &file,
        format!("{}\n\n{}\n{}\n", report(2024), report(2025), report(2026)),
    )
    .unwrap();
    let (ok, out, error) = run(server.addr, &["reports", "publish", "--from", file_arg]);
    assert!(ok, "{error}");
    assert!(
        out.contains("already published: #1 IRN→RUS 8708 2024"),
        "{out}"
    );
    assert!(
        out.contains("already published: #2 IRN→RUS 8708 2025"),
        "{out}"
    );
    assert!(out.contains("\n#3 IRN→RUS 8708 2026"), "{out}");
    assert!(
        out.contains("published 1 export reports; 2 were already published"),
        "{out}"
    );

    let (ok, listed, error) = run(server.addr, &["reports", "list", "--json"]);
    assert!(ok, "{error}");
    assert_eq!(listed.lines().count(), 3, "{listed}");
}
