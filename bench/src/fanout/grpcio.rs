//! The fan-out mode's Python grpcio subscribers: a client we did not
//! write, holding a few hundred live streams on one channel.

use std::time::Duration;

use tokio::sync::mpsc;

use super::publish;
use crate::servers::{BenchError, ServerProcess};

/// Python grpcio subscribers (`bench/clients/grpcio_subscribers.py`) on
/// one channel while reports are published at `rate`.
pub(super) async fn subscribers(
    server: &ServerProcess,
    subscribers: usize,
    rate: f64,
    duration: Duration,
) -> Result<serde_json::Value, BenchError> {
    let reports = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let mut child = std::process::Command::new("python3")
        .arg(GRPCIO_SUBSCRIBERS)
        .arg(server.addr.to_string())
        .arg(subscribers.to_string())
        .arg(reports.to_string())
        .arg((duration.as_secs_f64() + 60.0).to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let ready = tokio::time::timeout(Duration::from_secs(90), lines.recv()).await;
    if !matches!(&ready, Ok(Some(line)) if line == "ready") {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("grpcio subscribers did not get ready: {ready:?}").into());
    }
    publish(server, rate, duration).await?;
    let summary = tokio::time::timeout(duration + Duration::from_secs(90), lines.recv()).await;
    let _ = child.wait();
    let Ok(Some(summary)) = summary else {
        return Err("grpcio subscribers did not report".into());
    };
    let summary: serde_json::Value = serde_json::from_str(&summary)?;
    if summary["lost"] != 0 || summary["duplicated"] != 0 {
        return Err(format!("grpcio subscribers: {summary}; refusing to report").into());
    }
    Ok(summary)
}

const GRPCIO_SUBSCRIBERS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/clients/grpcio_subscribers.py");
