//! `fanout`: M subscribers over K connections while a publisher sends N
//! reports/s for T seconds, against tradewire and the broadcast floor.
//! Subscribers decode only what they check (sequence, publish time), so the
//! load generator is not the bottleneck it would be decoding whole reports.

use std::marker::PhantomData;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Buf;
use hdrhistogram::Histogram;
use prost::Message;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tradewire::pb;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;

use crate::Opts;
use crate::load::histogram;
use crate::sample;
use crate::servers::{self, BenchError, ServerProcess};
use crate::table::{Table, Target};

mod grpcio;

/// What a subscriber sees of an event.
#[derive(Debug, Clone, Copy)]
enum Seen {
    Report { sequence: u64, publish_nanos: i128 },
    CaughtUp,
    Other,
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Walks the fields of a message, calling `f(field, wire type, bytes or
/// varint)`.
fn fields(mut buf: &[u8], mut f: impl FnMut(u64, u64, &[u8], u64)) -> Option<()> {
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        match tag & 7 {
            0 => f(tag >> 3, 0, &[], varint(&mut buf)?),
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (body, rest) = (buf.get(..len)?, buf.get(len..)?);
                f(tag >> 3, 2, body, 0);
                buf = rest;
            }
            1 => buf = buf.get(8..)?,
            5 => buf = buf.get(4..)?,
            _ => return None,
        }
    }
    Some(())
}

fn parse(frame: &[u8]) -> Seen {
    let mut seen = Seen::Other;
    fields(frame, |field, wire, body, _| match (field, wire) {
        (1, 2) => {
            let (mut sequence, mut secs, mut nanos) = (0, 0i128, 0i128);
            fields(body, |f, w, b, v| match (f, w) {
                (2, 0) => sequence = v,
                (3, 2) => {
                    fields(b, |tf, _, _, tv| match tf {
                        1 => secs = i128::from(tv as i64),
                        2 => nanos = i128::from(tv as i64),
                        _ => {}
                    });
                }
                _ => {}
            });
            seen = Seen::Report {
                sequence,
                publish_nanos: secs * 1_000_000_000 + nanos,
            };
        }
        (2, 2) => seen = Seen::CaughtUp,
        _ => {}
    });
    seen
}

struct SeenCodec(PhantomData<()>);
struct RequestEncoder;
struct SeenDecoder;

impl Encoder for RequestEncoder {
    type Item = pb::SubscribeExportReportsRequest;
    type Error = tonic::Status;
    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Decoder for SeenDecoder {
    type Item = Seen;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Seen>, Self::Error> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(parse(&bytes)))
    }
}

impl Codec for SeenCodec {
    type Encode = pb::SubscribeExportReportsRequest;
    type Decode = Seen;
    type Encoder = RequestEncoder;
    type Decoder = SeenDecoder;
    fn encoder(&mut self) -> RequestEncoder {
        RequestEncoder
    }
    fn decoder(&mut self) -> SeenDecoder {
        SeenDecoder
    }
}

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[derive(Default)]
struct Tally {
    received: u64,
    duplicated: u64,
    last_sequence: u64,
}

/// One subscriber: waits for caught_up, then counts reports until it has
/// seen `last` (once the publisher says what it is) or the stream ends.
async fn subscriber(
    channel: Channel,
    ready: mpsc::Sender<()>,
    mut last: watch::Receiver<Option<u64>>,
) -> Result<(Tally, Histogram<u64>), BenchError> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path =
        PathAndQuery::from_static("/tradewire.v1.ExportReportService/SubscribeExportReports");
    let mut stream = grpc
        .server_streaming(
            tonic::Request::new(pb::SubscribeExportReportsRequest::default()),
            path,
            SeenCodec(PhantomData),
        )
        .await?
        .into_inner();
    let mut hist = histogram();
    let mut tally = Tally::default();
    let mut first = None;
    loop {
        let next = tokio::select! {
            message = stream.message() => message?,
            _ = last.changed() => {
                if matches!(*last.borrow(), Some(l) if tally.last_sequence >= l) { break; }
                continue;
            }
        };
        match next {
            None => break,
            Some(Seen::CaughtUp) => {
                let _ = ready.send(()).await;
            }
            Some(Seen::Report {
                sequence,
                publish_nanos,
            }) => {
                first.get_or_insert(sequence);
                if sequence <= tally.last_sequence {
                    tally.duplicated += 1;
                } else {
                    tally.received += 1;
                    tally.last_sequence = sequence;
                }
                let micros = ((now_nanos() - publish_nanos) / 1000).clamp(1, 60_000_000) as u64;
                let _ = hist.record(micros);
                if matches!(*last.borrow(), Some(l) if sequence >= l) {
                    break;
                }
            }
            Some(Seen::Other) => {}
        }
    }
    Ok((tally, hist))
}

pub(crate) struct FanoutResult {
    pub(crate) deliveries: u64,
    pub(crate) expected: u64,
    pub(crate) duplicated: u64,
    pub(crate) deliveries_per_sec: f64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) cpu_per_delivery: f64,
    /// Cores' worth of CPU the server and the load generator used.
    pub(crate) server_busy: f64,
    pub(crate) client_busy: f64,
    idle_bytes_per_subscriber: f64,
    pub(crate) published: u64,
}

/// Publishes `rate` reports a second for `duration` on an even schedule;
/// the first and last sequences published.
async fn publish(
    server: &ServerProcess,
    rate: f64,
    duration: Duration,
) -> Result<(u64, u64), BenchError> {
    let mut publisher = ExportReportServiceClient::new(server.connect().await?);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let (mut first_sequence, mut last_sequence) = (None, 0);
    let mut next = Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let request = pb::PublishExportReportRequest {
            export_report: Some(sample::report(i)),
            request_id: String::new(),
        };
        let published = publisher
            .publish_export_report(request)
            .await?
            .into_inner()
            .export_report
            .ok_or("no report")?;
        first_sequence.get_or_insert(published.sequence);
        last_sequence = published.sequence;
    }
    Ok((first_sequence.unwrap_or(1), last_sequence))
}

async fn measure(server: &ServerProcess, opts: &Opts) -> Result<FanoutResult, BenchError> {
    measure_across(server, &[server], opts).await
}

/// Publishes on `publisher` while the subscribers (and their connections)
/// are spread evenly over `subscribed`; CPU and memory are their sums.
pub(crate) async fn measure_across(
    publisher: &ServerProcess,
    subscribed: &[&ServerProcess],
    opts: &Opts,
) -> Result<FanoutResult, BenchError> {
    let mut channels = Vec::new();
    for i in 0..opts.fanout_connections.max(subscribed.len()) {
        channels.push(subscribed[i % subscribed.len()].connect().await?);
    }
    let rss = || subscribed.iter().map(|s| s.rss_bytes()).sum::<u64>();
    let cpu = || subscribed.iter().map(|s| s.cpu_micros()).sum::<u64>();
    let rss_before = rss();
    let (ready_tx, mut ready_rx) = mpsc::channel(opts.subscribers);
    let (last_tx, last_rx) = watch::channel(None);
    let mut tasks = Vec::new();
    for i in 0..opts.subscribers {
        tasks.push(tokio::spawn(subscriber(
            channels[i % channels.len()].clone(),
            ready_tx.clone(),
            last_rx.clone(),
        )));
    }
    drop(ready_tx);
    let opening = async {
        for _ in 0..opts.subscribers {
            ready_rx
                .recv()
                .await
                .ok_or("a subscriber failed before catching up")?;
        }
        Ok::<(), BenchError>(())
    };
    tokio::time::timeout(Duration::from_secs(120), opening)
        .await
        .map_err(|_| "subscribers did not open in 120 s")??;
    // Let the server settle its buffers before reading its idle memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_bytes_per_subscriber =
        rss().saturating_sub(rss_before) as f64 / opts.subscribers as f64;

    let cpu_before = cpu();
    let client_cpu_before = crate::proc::cpu_micros(std::process::id()).unwrap_or(0);
    let started = Instant::now();
    let (first_sequence, last_sequence) = publish(publisher, opts.rate, opts.duration).await?;
    let _ = last_tx.send(Some(last_sequence));
    let mut deliveries = 0;
    let mut duplicated = 0;
    let mut latency = histogram();
    let collect = async {
        for task in tasks {
            let (tally, hist) = task.await??;
            deliveries += tally.received;
            duplicated += tally.duplicated;
            let _ = latency.add(&hist);
        }
        Ok::<(), BenchError>(())
    };
    tokio::time::timeout(opts.duration + Duration::from_secs(60), collect)
        .await
        .map_err(|_| "deliveries did not finish within 60 s of the last publish")??;
    let elapsed = started.elapsed();
    let cpu = cpu().saturating_sub(cpu_before);
    let client_cpu = crate::proc::cpu_micros(std::process::id())
        .unwrap_or(0)
        .saturating_sub(client_cpu_before);
    let published = last_sequence + 1 - first_sequence;
    Ok(FanoutResult {
        deliveries,
        expected: published * opts.subscribers as u64,
        duplicated,
        deliveries_per_sec: deliveries as f64 / elapsed.as_secs_f64(),
        latency,
        cpu_per_delivery: cpu as f64 / deliveries.max(1) as f64,
        server_busy: cpu as f64 / elapsed.as_micros() as f64,
        client_busy: client_cpu as f64 / elapsed.as_micros() as f64,
        idle_bytes_per_subscriber,
        published,
    })
}

pub(crate) async fn run(opts: &Opts) -> Result<Table, BenchError> {
    let mut table = Table::new(
        format!(
            "fanout: {} subscribers over {} connections, {:?} per run",
            opts.subscribers, opts.fanout_connections, opts.duration
        ),
        &[
            "server",
            "scenario",
            "published",
            "deliveries/s",
            "lost",
            "duplicated",
            "p50 ms",
            "p99 ms",
            "server cpu us/delivery",
            "server busy",
            "client busy",
            "idle KiB/subscriber",
            "efficiency",
        ],
    );
    let floor = servers::floor("floor-fanout", opts.server_core)?;
    // 10,000 subscriptions open at once: past the default in-flight limit
    // (4,096), which would shed some of them (the bench's subscribers do
    // not retry).
    let ours = servers::tradewire(
        opts.server_core,
        None,
        &["--max-subscribers", "1000000", "--max-in-flight", "1000000"],
    )?;
    // Saturation first: the floor's delivery rate there sets the next rate.
    let mut scenarios = vec![(format!("{} reports/s", opts.rate), opts.rate)];
    let mut floor_peak = None;
    let mut i = 0;
    while i < scenarios.len() {
        let (scenario, rate) = scenarios[i].clone();
        let run_opts = Opts {
            rate,
            ..opts.clone()
        };
        let mut floor_cpu = None;
        let (mut floor_p99, mut floor_idle_kib) = (0.0, 0.0);
        for (kind, server) in [("floor", &floor), ("tradewire", &ours)] {
            let r = measure(server, &run_opts).await?;
            let lost = r.expected.saturating_sub(r.deliveries);
            if kind == "tradewire" && (lost > 0 || r.duplicated > 0) {
                return Err(format!(
                    "tradewire lost {lost} and duplicated {} deliveries; refusing to report",
                    r.duplicated
                )
                .into());
            }
            let efficiency = match floor_cpu {
                Some(f) if kind == "tradewire" => json!(f / r.cpu_per_delivery),
                _ => json!(""),
            };
            if kind == "floor" {
                floor_cpu = Some(r.cpu_per_delivery);
                floor_peak.get_or_insert(r.deliveries_per_sec);
                floor_p99 = r.latency.value_at_quantile(0.99) as f64 / 1000.0;
                floor_idle_kib = r.idle_bytes_per_subscriber / 1024.0;
            } else {
                let p99 = r.latency.value_at_quantile(0.99) as f64 / 1000.0;
                let floor_cpu = floor_cpu.unwrap_or(0.0);
                let ratio = r.cpu_per_delivery / floor_cpu.max(1e-9);
                table.target(Target::at_most(
                    format!("server CPU per delivery over the floor's, {scenario}"),
                    ratio,
                    1.25,
                    format!(
                        "{ratio:.2}: {:.2} us against {floor_cpu:.2} us",
                        r.cpu_per_delivery
                    ),
                ));
                let latency_bound = match i {
                    1 => Some(50.0),
                    2 => Some(10.0),
                    _ => None,
                };
                if let Some(bound) = latency_bound {
                    table.target(Target::at_most(
                        format!("delivery p99 ms, {scenario}"),
                        p99,
                        bound,
                        format!("{p99:.1} ms; the floor {floor_p99:.1} ms"),
                    ));
                }
                if i == 0 {
                    let kib = r.idle_bytes_per_subscriber / 1024.0;
                    table.target(Target::at_most(
                        format!("KiB per idle subscriber, {} subscribers", opts.subscribers),
                        kib,
                        16.0,
                        format!("{kib:.2} KiB; the floor {floor_idle_kib:.2} KiB"),
                    ));
                }
            }
            table.row(vec![
                json!(kind),
                json!(scenario),
                json!(r.published),
                json!(r.deliveries_per_sec),
                json!(lost),
                json!(r.duplicated),
                json!(r.latency.value_at_quantile(0.5) as f64 / 1000.0),
                json!(r.latency.value_at_quantile(0.99) as f64 / 1000.0),
                json!(r.cpu_per_delivery),
                json!(r.server_busy),
                json!(r.client_busy),
                // Only a fresh server's growth is memory per subscriber.
                if i == 0 {
                    json!(r.idle_bytes_per_subscriber / 1024.0)
                } else {
                    json!("")
                },
                efficiency,
            ]);
        }
        if i == 0 {
            let peak = floor_peak.unwrap_or(0.0);
            let rate = 0.7 * peak / opts.subscribers as f64;
            scenarios.push((
                format!("{rate:.1} reports/s (70% of the floor's {peak:.0} deliveries/s above)"),
                rate,
            ));
            scenarios.push(("10 reports/s".to_string(), 10.0));
        }
        i += 1;
    }
    let python = if opts.smoke { 20 } else { 300 };
    for (kind, server) in [("floor", &floor), ("tradewire", &ours)] {
        let summary = grpcio::subscribers(server, python, 10.0, opts.duration).await?;
        if kind == "tradewire" {
            let (lost, duplicated) = (summary["lost"].clone(), summary["duplicated"].clone());
            table.target(Target::holds(
                format!("no delivery lost or duplicated to {python} Python grpcio subscribers"),
                lost == 0 && duplicated == 0,
                format!("{lost} lost, {duplicated} duplicated"),
            ));
        }
        table.row(vec![
            json!(kind),
            json!(format!(
                "10 reports/s to {python} {} subscribers",
                summary["client"].as_str().unwrap_or("python grpcio")
            )),
            json!((10.0 * opts.duration.as_secs_f64()).round()),
            json!(summary["deliveries"].as_f64().unwrap_or(0.0) / opts.duration.as_secs_f64()),
            summary["lost"].clone(),
            summary["duplicated"].clone(),
            summary["p50_ms"].clone(),
            summary["p99_ms"].clone(),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
        ]);
    }
    table.note("lost and duplicated are counted by sequence per subscriber; the floor drops laggards by design, tradewire must not.");
    table.note("server busy, client busy: cores' worth of CPU each process used while publishing and delivering (1.0 = one core saturated).");
    table.note("efficiency = floor server CPU-us per delivery / tradewire server CPU-us per delivery, measured in this run.");
    table.note("the first rate (100 reports/s to 10,000 subscribers by default) saturates both cores; the second is 70% of the floor's delivery rate there.");
    table.note("latency is publish (server clock) to receive (client clock), same machine; a run where tradewire lost or duplicated a delivery is refused.");
    Ok(table)
}
