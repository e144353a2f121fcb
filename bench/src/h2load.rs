//! `h2load` (nghttp2) as a load generator we did not write.
//!
//! h2load counts any HTTP 200 as a success, and gRPC errors are HTTP 200
//! too, with the status in the trailers, which h2load does not report. So a
//! run is accepted only if every request succeeded at the HTTP level *and*
//! the data bytes received are exactly `done × (5 + expected message
//! length)`: a gRPC error answers with trailers only and no message, so a
//! single failed call, or one answer of another size, shows up there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::load::histogram;
use crate::servers::BenchError;

/// One h2load run.
#[derive(Debug)]
pub(crate) struct H2loadResult {
    pub done: u64,
    /// Calls per second, as h2load reports it.
    pub rate: f64,
    pub latencies: hdrhistogram::Histogram<u64>,
    /// The server's CPU time during the measured run (not the warm-up),
    /// in microseconds; 0 without a `server_pid`.
    pub server_cpu_micros: u64,
}

impl H2loadResult {
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        self.latencies.value_at_quantile(q) as f64 / 1000.0
    }

    /// The server's CPU per call during the measured run.
    pub(crate) fn server_cpu_per_call(&self) -> f64 {
        self.server_cpu_micros as f64 / self.done.max(1) as f64
    }
}

/// What to send and how hard.
#[derive(Debug, Clone)]
pub(crate) struct H2loadRun {
    pub addr: SocketAddr,
    /// The gRPC method path, e.g. `/tradewire.v1.TradeService/GetTradeRecord`.
    pub path: &'static str,
    /// The encoded request message (unframed).
    pub request: Vec<u8>,
    /// The encoded length of every expected response message.
    pub response_len: usize,
    pub connections: usize,
    pub streams: usize,
    pub duration: Duration,
    /// The server process whose CPU the measured run is charged with.
    pub server_pid: Option<u32>,
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The first number after `label` in `text` (h2load's summary lines).
fn number_after(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    let token: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    token.parse().ok()
}

/// The run's wall time from h2load's `finished in 1.10s` (or `901.5ms`).
fn finished_in(text: &str) -> Option<f64> {
    let label = "finished in";
    let rest = text[text.find(label)? + label.len()..].trim_start();
    let value = number_after(rest, "")?;
    let unit: String = rest
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    match unit.as_str() {
        "s" => Some(value),
        "ms" => Some(value / 1e3),
        "us" => Some(value / 1e6),
        _ => None,
    }
}

/// h2load's own rate: the number before ` req/s` on its `finished` line.
fn calls_per_second(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("finished in"))?;
    let before = &line[..line.find(" req/s")?];
    before.rsplit([' ', ',']).next()?.parse().ok()
}

/// The field of h2load's `requests:` line before ` name`.
fn count_before(line: &str, name: &str) -> Option<u64> {
    line.split(',').map(str::trim).find_map(|part| {
        part.strip_suffix(name)?
            .trim()
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    })
}

pub(crate) fn available() -> bool {
    Command::new("h2load")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs h2load and checks every answer, as the module doc says: a
/// one-second warm-up measures the rate, then a run of a fixed number of
/// calls (about `duration` long) is measured, and the server's CPU is
/// read around it alone. A fixed count, unlike a duration, lets every call
/// finish, so the data byte count is exact. The load generator inherits
/// this process's core.
pub(crate) fn run(spec: &H2loadRun) -> Result<H2loadResult, BenchError> {
    let warm_up = h2load(spec, Load::Seconds(1))?;
    let calls = (warm_up.rate() * spec.duration.as_secs_f64()).clamp(100.0, 5_000_000.0) as u64;
    let cpu = || {
        spec.server_pid
            .and_then(crate::proc::cpu_micros)
            .unwrap_or(0)
    };
    let cpu_before = cpu();
    let mut measured = h2load(spec, Load::Calls(calls))?;
    measured.server_cpu_micros = cpu().saturating_sub(cpu_before);
    if measured.done != calls {
        return Err(format!(
            "h2load {}: {} of {calls} calls done",
            spec.path, measured.done
        )
        .into());
    }
    Ok(measured)
}

enum Load {
    Seconds(u64),
    Calls(u64),
}

fn h2load(spec: &H2loadRun, load: Load) -> Result<H2loadResult, BenchError> {
    let work = std::env::temp_dir().join(format!("tradewire-h2load-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let body = work.join("request.bin");
    let log: PathBuf = work.join("requests.tsv");
    std::fs::write(&body, framed(&spec.request))?;
    let mut command = Command::new("h2load");
    command
        .args(["-t", "1"])
        .args(["-c", &spec.connections.to_string()])
        .args(["-m", &spec.streams.to_string()]);
    match load {
        Load::Seconds(seconds) => command.args(["-D", &seconds.to_string()]),
        Load::Calls(calls) => command.args(["-n", &calls.to_string()]),
    };
    let output = command
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("-d")
        .arg(&body)
        .arg(format!("--log-file={}", log.display()))
        .arg(format!("http://{}{}", spec.addr, spec.path))
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&work);
    if !output.status.success() {
        return Err(format!(
            "h2load failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let requests = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .ok_or_else(|| format!("no requests line in h2load output: {text}"))?;
    let done = count_before(requests, "done").ok_or("h2load: no done count")?;
    let succeeded = count_before(requests, "succeeded").ok_or("h2load: no succeeded count")?;
    let failed = count_before(requests, "failed").unwrap_or(u64::MAX);
    let errored = count_before(requests, "errored").unwrap_or(u64::MAX);
    let data = text
        .lines()
        .find(|l| l.starts_with("traffic:"))
        .and_then(|l| {
            let data_part = l.rsplit(',').next()?;
            number_after(data_part, "(")
        })
        .ok_or("h2load: no data byte count")? as u64;
    let seconds = finished_in(&text).ok_or("h2load: no duration")?;
    let rate = calls_per_second(&text).ok_or("h2load: no req/s")?;
    // Two readings of one run must agree, or the output was misread.
    let derived = done as f64 / seconds.max(1e-9);
    if (derived - rate).abs() > 0.05 * rate {
        return Err(format!("h2load: {rate} req/s reported, {derived} derived: {text}").into());
    }
    let frame = 5 + spec.response_len as u64;
    // A timed warm-up cuts calls off mid-answer: only the fixed-count run
    // has an exact byte count.
    let whole = match load {
        Load::Calls(_) => data == done * frame,
        Load::Seconds(_) => data >= done * frame,
    };
    if done == 0 || succeeded != done || failed != 0 || errored != 0 || !whole {
        return Err(format!(
            "h2load {}: {done} done, {succeeded} succeeded, {failed} failed, {errored} errored, \
             {data} data bytes where every answer being a {frame}-byte gRPC message \
             makes {}; refusing to report this run",
            spec.path,
            done * frame
        )
        .into());
    }
    let mut latencies = histogram();
    for line in log_text.lines() {
        let mut fields = line.split('\t');
        let (Some(_start), Some(status), Some(micros)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if status != "200" {
            return Err(format!("h2load: an answer with HTTP status {status}").into());
        }
        if let Ok(micros) = micros.trim().parse::<u64>() {
            latencies.saturating_record(micros.max(1));
        }
    }
    Ok(H2loadResult {
        done,
        rate,
        latencies,
        server_cpu_micros: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_h2loads_summary() {
        let line = "requests: 45435 total, 45499 started, 45435 done, 45435 succeeded, 0 failed, 0 errored, 0 timeout";
        assert_eq!(count_before(line, "done"), Some(45435));
        assert_eq!(count_before(line, "failed"), Some(0));
        let traffic = "traffic: 23.05MB (24172036) total, 133.43KB (136629) headers (space savings 95.76%), 21.71MB (22762935) data";
        let data_part = traffic.rsplit(',').next().unwrap();
        assert_eq!(number_after(data_part, "("), Some(22762935.0));
        assert_eq!(finished_in("finished in 2.00s, 22717.50 req/s"), Some(2.0));
        assert_eq!(
            finished_in("finished in 901.50ms, 11.09 req/s"),
            Some(0.9015)
        );
    }
}
