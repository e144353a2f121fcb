//! Load loops: closed (as fast as answers come) and open (at a fixed rate),
//! bounded in time, recording latency in an HDR histogram.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use tonic::transport::Channel;

pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant figures; the bounds are constants.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Runs `in_flight` loops on each channel for `duration`; each loop issues
/// a call, waits for it, and issues the next. With `rate` set, loops
/// instead start calls on a fixed schedule and latency counts from the
/// scheduled start, so a slow server cannot hide its queueing.
pub async fn run<F, Fut>(
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
    let merged = Arc::new(Mutex::new((histogram(), 0u64, 0u64, None::<String>)));
    let started = Instant::now();
    let deadline = started + duration;
    let interval = rate.map(|r| Duration::from_secs_f64(loops as f64 / r));
    let mut tasks = Vec::new();
    for i in 0..loops {
        let channel = channels[i % channels.len()].clone();
        let call = Arc::clone(&call);
        let merged = Arc::clone(&merged);
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            let mut n = i as u64;
            // Spread open-loop starts over one interval.
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(i as f64 / loops as f64));
            while Instant::now() < deadline {
                let start = match interval {
                    Some(iv) => {
                        tokio::time::sleep_until(next.into()).await;
                        let scheduled = next;
                        next += iv;
                        scheduled
                    }
                    None => Instant::now(),
                };
                match call(channel.clone(), n).await {
                    Ok(()) => ok += 1,
                    Err(status) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| status.to_string());
                    }
                }
                let micros = start.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                let _ = hist.record(micros);
                n += loops as u64;
            }
            let mut m = merged.lock().await;
            let _ = m.0.add(&hist);
            m.1 += ok;
            m.2 += errors;
            if m.3.is_none() {
                m.3 = first_error;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let m = Arc::try_unwrap(merged).ok().map(Mutex::into_inner);
    let (latency_us, requests, errors, first_error) =
        m.unwrap_or((histogram(), 0, 1, Some("lost results".into())));
    LoadResult {
        requests,
        errors,
        first_error,
        elapsed,
        latency_us,
    }
}
