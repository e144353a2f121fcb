//! Load loops: closed (as fast as answers come) and open (at a fixed rate),
//! bounded in time, recording latency in an HDR histogram.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use tonic::transport::Channel;
use tradewire::pb;
use tradewire::pb::trade_service_client::TradeServiceClient;

use crate::sample;
use crate::servers::{BenchError, ServerProcess};

pub(crate) struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
    /// Every call as (ms from the run's start when it was sent, latency
    /// in µs), for figures over a window of the run (a snapshot's).
    pub timeline: Vec<(u32, u32)>,
}

impl LoadResult {
    pub(crate) fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    /// The latency quantile, in ms, of the calls sent in the run's first
    /// `window_ms`, and how many there were.
    pub(crate) fn quantile_ms_within(&self, window_ms: u32, q: f64) -> (f64, u64) {
        let mut hist = histogram();
        for (_, micros) in self.timeline.iter().filter(|(at, _)| *at <= window_ms) {
            let _ = hist.record(u64::from(*micros));
        }
        (hist.value_at_quantile(q) as f64 / 1000.0, hist.len())
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant figures; the bounds are constants.
    #[allow(clippy::expect_used)] // constant bounds that are valid
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Runs `in_flight` loops on each channel for `duration`; each loop issues
/// a call, waits for it, and issues the next. With `rate` set, a pacer
/// task releases the calls due every millisecond (tokio's timer
/// resolution) as permits, and each loop takes a permit before each call. A schedule the server cannot keep shows as an achieved
/// rate below the target.
pub(crate) async fn run<F, Fut>(
    channels: &[Channel],
    in_flight: usize,
    duration: Duration,
    rate: Option<f64>,
    call: F,
) -> LoadResult
where
    F: Fn(Channel, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let call = Arc::new(call);
    let loops = channels.len() * in_flight;
    let merged = Arc::new(Mutex::new((
        histogram(),
        0u64,
        0u64,
        None::<String>,
        Vec::<(u32, u32)>::new(),
    )));
    let started = Instant::now();
    let deadline = started + duration;
    let permits = rate.map(|rate| {
        let permits = Arc::new(tokio::sync::Semaphore::new(0));
        let released = Arc::clone(&permits);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut granted = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                let due = (started.elapsed().as_secs_f64() * rate) as u64;
                released.add_permits((due - granted) as usize);
                granted = due;
            }
            // Wake every loop so it sees the deadline.
            released.close();
        });
        permits
    });
    let mut tasks = Vec::new();
    for i in 0..loops {
        let channel = channels[i % channels.len()].clone();
        let call = Arc::clone(&call);
        let merged = Arc::clone(&merged);
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut timeline = Vec::new();
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            let mut n = i as u64;
            while Instant::now() < deadline {
                if let Some(permits) = &permits {
                    match permits.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => break,
                    }
                }
                let start = Instant::now();
                match call(channel.clone(), n).await {
                    Ok(()) => ok += 1,
                    Err(status) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| status.to_string());
                    }
                }
                let micros = start.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                let _ = hist.record(micros);
                let sent_ms = (start - started).as_millis().min(u128::from(u32::MAX)) as u32;
                timeline.push((sent_ms, micros as u32));
                n += loops as u64;
            }
            let mut m = merged.lock().await;
            let _ = m.0.add(&hist);
            m.1 += ok;
            m.2 += errors;
            if m.3.is_none() {
                m.3 = first_error;
            }
            m.4.extend(timeline);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let m = Arc::try_unwrap(merged).ok().map(Mutex::into_inner);
    let (latency_us, requests, errors, first_error, timeline) =
        m.unwrap_or((histogram(), 0, 1, Some("lost results".into()), Vec::new()));
    LoadResult {
        requests,
        errors,
        first_error,
        elapsed,
        latency_us,
        timeline,
    }
}

/// `connections` x `per_connection` loops creating sample records (numbered
/// from `first`) for `duration`, at `rate` in all if set.
pub(crate) async fn creates(
    server: &ServerProcess,
    connections: usize,
    per_connection: usize,
    duration: Duration,
    rate: Option<f64>,
    first: u64,
) -> Result<LoadResult, BenchError> {
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(server.connect().await?);
    }
    Ok(run(
        &channels,
        per_connection,
        duration,
        rate,
        move |channel, n| async move {
            let request = pb::CreateTradeRecordRequest {
                trade_record: Some(sample::record(first + n)),
                request_id: String::new(),
            };
            TradeServiceClient::new(channel)
                .create_trade_record(request)
                .await
                .map(drop)
        },
    )
    .await)
}

/// A run with any error is refused, not reported.
pub(crate) fn refuse_errors(what: &str, result: &LoadResult) -> Result<(), BenchError> {
    if result.errors > 0 {
        return Err(format!(
            "{what}: {} errors (first: {}); refusing to report",
            result.errors,
            result.first_error.as_deref().unwrap_or("?")
        )
        .into());
    }
    Ok(())
}
