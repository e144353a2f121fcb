//! The bulk writes from a file of JSON lines, `records create --from` and
//! `reports publish --from`, and the request ids that make them safe to
//! run again.
//!
//! Why derived ids: a run that fails halfway (a network blip, a deadline,
//! a server restart) is run again by hand. Each call's request_id comes
//! from the content and line numbers of the lines it sends, so the second
//! run sends the same ids for the same lines, and the server answers the
//! calls it already did with their first outcome (`replayed`) instead of
//! storing them again. An edited line gets a new id; a line moved to
//! another line number is a new write.

use std::io::BufRead;
use std::path::Path;

use tradewire::client::Client;
use tradewire::pb;

use super::{human, json, print, progress};

/// Most records one batch call carries: the server's limit.
const MAX_BATCH: usize = 1000;

/// A non-blank line of the input and its 1-based line number.
struct Line {
    number: usize,
    text: String,
}

/// The non-blank lines of `from` (`-` for standard input).
fn read_lines(from: &Path) -> Result<Vec<Line>, String> {
    let reader: Box<dyn BufRead> = if from.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(from).map_err(|e| format!("{}: {e}", from.display()))?,
        ))
    };
    let mut out = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let text = line.map_err(|e| format!("{} line {}: {e}", from.display(), index + 1))?;
        if !text.trim().is_empty() {
            out.push(Line {
                number: index + 1,
                text,
            });
        }
    }
    Ok(out)
}

/// The request id of a call that sends `lines` for `what`: a SHA-256 of
/// each line's number and text, so the same lines give the same id on
/// every run.
fn request_id(what: &str, lines: &[Line]) -> String {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(what.as_bytes());
    for line in lines {
        digest.update(b"\n");
        digest.update(line.number.to_string().as_bytes());
        digest.update(b"\t");
        digest.update(line.text.as_bytes());
    }
    let hex: String = digest
        .finish()
        .as_ref()
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("cli-{what}-{hex}")
}

/// Parses every line before anything is sent: a bad line is an error
/// naming it, and nothing is written.
fn parse_all<M: prost::Message + Default>(
    from: &Path,
    lines: &[Line],
    name: &str,
) -> Result<Vec<M>, String> {
    lines
        .iter()
        .map(|line| {
            json::from_json::<M>(&line.text, name)
                .map_err(|e| format!("{} line {}: {e}", from.display(), line.number))
        })
        .collect()
}

/// The error of a call that failed at `line`, after `done`, with what to
/// do next: a failure the server may not repeat (it went away, a deadline)
/// is worth running again as it is; a refusal of the line is not.
fn failed(from: &Path, line: usize, error: &tonic::Status, done: &str) -> String {
    use tonic::Code;
    let next = match error.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Unknown
        | Code::Internal => "run the same command again to go on",
        _ => "fix the line and run again: the lines before it are not written twice",
    };
    format!(
        "{} line {line}: {:?}: {} ({done} before it; {next})",
        from.display(),
        error.code(),
        error.message()
    )
}

/// `records create --from FILE --batch N`.
pub(super) async fn create_records(
    client: &Client,
    as_json: bool,
    from: &Path,
    batch: usize,
) -> Result<(), String> {
    let mut trade = client.trade();
    let lines = read_lines(from)?;
    let records = parse_all::<pb::TradeRecord>(from, &lines, "TradeRecord")?;
    let bar = progress(records.len());
    let (mut created, mut there) = (0, 0);
    let size = batch.clamp(1, MAX_BATCH);
    for (chunk, chunk_lines) in records.chunks(size).zip(lines.chunks(size)) {
        let response = trade
            .batch_create_trade_records(pb::BatchCreateTradeRecordsRequest {
                requests: chunk
                    .iter()
                    .map(|r| pb::CreateTradeRecordRequest {
                        trade_record: Some(r.clone()),
                        request_id: String::new(),
                    })
                    .collect(),
                request_id: request_id("records", chunk_lines),
            })
            .await
            .map_err(|e| {
                let at = chunk_lines.first().map_or(0, |l| l.number);
                failed(
                    from,
                    at,
                    &e,
                    &format!("{created} created and {there} already there"),
                )
            })?
            .into_inner();
        if response.replayed {
            there += response.trade_records.len();
        } else {
            created += response.trade_records.len();
        }
        bar.inc(chunk.len() as u64);
        if as_json {
            for r in &response.trade_records {
                print(json::to_line(r, "TradeRecord")?)?;
            }
        }
    }
    bar.finish_and_clear();
    if !as_json {
        print(format!(
            "created {created} trade records; {there} were already there (stored by an earlier run of this file)"
        ))?;
    }
    Ok(())
}

/// `reports publish --from FILE`, one call per report.
pub(super) async fn publish_reports(
    client: &Client,
    as_json: bool,
    from: &Path,
) -> Result<(), String> {
    let mut service = client.reports();
    let lines = read_lines(from)?;
    let reports = parse_all::<pb::ExportReport>(from, &lines, "ExportReport")?;
    let bar = progress(reports.len());
    let (mut published_now, mut there) = (0, 0);
    for (report, line) in reports.into_iter().zip(&lines) {
        let response = service
            .publish_export_report(pb::PublishExportReportRequest {
                export_report: Some(report),
                request_id: request_id("reports", std::slice::from_ref(line)),
            })
            .await
            .map_err(|e| {
                let done = format!("{published_now} published and {there} already published");
                failed(from, line.number, &e, &done)
            })?
            .into_inner();
        let published = response.export_report.ok_or("the answer holds no report")?;
        bar.inc(1);
        if response.replayed {
            there += 1;
        } else {
            published_now += 1;
        }
        if as_json {
            print(json::to_line(&published, "ExportReport")?)?;
        } else {
            let mark = if response.replayed {
                "already published: "
            } else {
                ""
            };
            bar.suspend(|| print(format!("{mark}{}", human::report_line(&published))))?;
        }
    }
    bar.finish_and_clear();
    if !as_json {
        print(format!(
            "published {published_now} export reports; {there} were already published (by an earlier run of this file)"
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Line, request_id};

    fn line(number: usize, text: &str) -> Line {
        Line {
            number,
            text: text.into(),
        }
    }

    #[test]
    fn the_same_lines_give_the_same_id_and_any_change_another() {
        let batch = [line(1, "{\"a\":1}"), line(2, "{\"a\":2}")];
        let id = request_id("records", &batch);
        assert_eq!(id, request_id("records", &batch), "stable across runs");
        assert!(id.starts_with("cli-records-") && id.len() <= 128, "{id}");
        // Another text, another line number, another operation, or the
        // batch cut elsewhere: another id.
        assert_ne!(
            id,
            request_id("records", &[line(1, "{\"a\":1}"), line(2, "{\"a\":3}")])
        );
        assert_ne!(
            id,
            request_id("records", &[line(1, "{\"a\":1}"), line(3, "{\"a\":2}")])
        );
        assert_ne!(id, request_id("reports", &batch));
        assert_ne!(id, request_id("records", &batch[..1]));
    }
}
