//! `scale`: a filtered List page at 10k and at 1M stored records, through
//! the store the handlers use, and the memory each stored record costs.

use std::time::Instant;

use serde_json::json;
use tradewire::bench_hooks::StoreProbe;
use tradewire::pb;

use crate::Opts;
use crate::load::histogram;
use crate::proc;
use crate::sample;
use crate::servers::BenchError;
use crate::table::{Table, Target};

struct Query {
    name: &'static str,
    filter: pb::TradeFilter,
}

fn queries() -> Vec<Query> {
    vec![
        Query {
            name: "exporter+importer (hot pair), page 100",
            filter: pb::TradeFilter {
                exporter: "IRN".into(),
                importer: "RUS".into(),
                ..Default::default()
            },
        },
        Query {
            name: "hs_prefix 87 + period 2003, page 100",
            filter: pb::TradeFilter {
                hs_prefix: "87".into(),
                period_overlaps: Some(pb::DateRange {
                    start: Some(pb::Date {
                        year: 2003,
                        month: 1,
                        day: 1,
                    }),
                    end: Some(pb::Date {
                        year: 2003,
                        month: 12,
                        day: 31,
                    }),
                }),
                ..Default::default()
            },
        },
    ]
}

pub(crate) async fn run(opts: &Opts) -> Result<Table, BenchError> {
    let sizes: [u64; 2] = if opts.smoke {
        [1_000, 20_000]
    } else {
        [10_000, 1_000_000]
    };
    let iterations = if opts.smoke { 200 } else { 2_000 };
    let mut table = Table::new(
        "scale: filtered ListTradeRecords page in the store, and memory per record",
        &[
            "records",
            "query",
            "items",
            "p50 us",
            "p99 us",
            "p50 vs smallest",
            "rss MiB",
            "bytes/record",
        ],
    );
    let pid = std::process::id();
    let mut baseline_p50: Vec<f64> = Vec::new();
    for (s, size) in sizes.into_iter().enumerate() {
        let rss_before = proc::rss_bytes(pid).unwrap_or(0);
        let store = StoreProbe::new()?;
        let started = Instant::now();
        for chunk_start in (0..size).step_by(1000) {
            let records: Vec<_> = (chunk_start..(chunk_start + 1000).min(size))
                .map(sample::record)
                .collect();
            store.create_trade_records(&records).await?;
        }
        let quiet: Vec<_> = (0..100).map(sample::quiet_pair_record).collect();
        store.create_trade_records(&quiet).await?;
        let load_secs = started.elapsed().as_secs_f64();
        let rss = proc::rss_bytes(pid).unwrap_or(0);
        let per_record = rss.saturating_sub(rss_before) as f64 / size as f64;
        // A record's fields alone are over 100 bytes: less growth means the
        // store reused memory freed earlier in this process, not that it
        // is small.
        if size >= 100_000 && per_record < 100.0 {
            return Err(format!(
                "RSS grew {per_record:.0} bytes a record over {size} records: the heap was already grown; run scale in a fresh process; refusing to report"
            )
            .into());
        }
        for (q, query) in queries().iter().enumerate() {
            let filter = store.filter(Some(&query.filter))?;
            let mut hist = histogram();
            let mut items = 0;
            for _ in 0..iterations {
                let t = Instant::now();
                items = store.first_page_len(&filter, 100);
                let _ = hist.record((t.elapsed().as_nanos() / 1000).max(1) as u64);
            }
            let p50 = hist.value_at_quantile(0.5) as f64;
            if s == 0 {
                baseline_p50.push(p50);
            } else {
                let ratio = p50 / baseline_p50[q];
                table.target(Target::at_most(
                    format!(
                        "filtered page p50 at {size} records over at {} ({})",
                        sizes[0], query.name
                    ),
                    ratio,
                    2.0,
                    format!("{ratio:.2}: {p50:.0} us against {:.0} us", baseline_p50[q]),
                ));
            }
            table.row(vec![
                json!(size),
                json!(query.name),
                json!(items),
                json!(p50),
                json!(hist.value_at_quantile(0.99) as f64),
                json!(p50 / baseline_p50[q]),
                json!(rss as f64 / 1_048_576.0),
                json!(per_record),
            ]);
        }
        for (q, (name, exporter, importer)) in [
            (
                "summary, 2000..2024 by quarter: a pair with 100 records at every size",
                "MNG",
                "NPL",
            ),
            (
                "summary, 2000..2024 by quarter: the hot pair IRN-RUS (4% of the records)",
                "IRN",
                "RUS",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let request = pb::SummarizeTradeRequest {
                filter: Some(pb::TradeFilter {
                    exporter: exporter.into(),
                    importer: importer.into(),
                    ..Default::default()
                }),
                calendar: pb::Calendar::Gregorian.into(),
                granularity: pb::Granularity::Quarter.into(),
                first_year: 2000,
                last_year: 2024,
                currency_code: String::new(),
            };
            let mut hist = histogram();
            let mut counted = 0;
            for _ in 0..iterations / 10 {
                let t = Instant::now();
                counted = store.summarize(&request)?;
                let _ = hist.record((t.elapsed().as_nanos() / 1000).max(1) as u64);
            }
            let p50 = hist.value_at_quantile(0.5) as f64;
            let base = queries().len() + q;
            if s == 0 {
                baseline_p50.push(p50);
            }
            table.row(vec![
                json!(size),
                json!(name),
                json!(counted),
                json!(p50),
                json!(hist.value_at_quantile(0.99) as f64),
                json!(p50 / baseline_p50[base]),
                json!(""),
                json!(""),
            ]);
        }
        // Get and List answer from each record's encoding, cached on first
        // read: what the store costs once every record has been read.
        let read = store.read_every_record();
        let rss_read = proc::rss_bytes(pid).unwrap_or(0);
        table.row(vec![
            json!(size),
            json!("every record read once (its encoding cached)"),
            json!(read),
            json!(""),
            json!(""),
            json!(""),
            json!(rss_read as f64 / 1_048_576.0),
            json!(rss_read.saturating_sub(rss_before) as f64 / size as f64),
        ]);
        if s + 1 == sizes.len() {
            let mib = |bytes: u64| bytes.saturating_sub(rss_before) as f64 / 1_048_576.0;
            let (stored, read) = (mib(rss), mib(rss_read));
            table.target(Target::at_most(
                format!("MiB for {size} records, once every record has been read"),
                read,
                1024.0,
                format!("{read:.0} MiB read, {stored:.0} MiB as stored"),
            ));
        }
        println!("loaded {size} records in {load_secs:.1} s");
        drop(store);
    }
    table.note("p50 vs smallest: the page's median time divided by its time at the smallest size, in this run (target: at most 2).");
    table.note("summary rows: SummarizeTrade through the store as the handler calls it; items = records counted. Its cost follows the records the filter matches (found through the pair index), not the store's size.");
    table.note("bytes/record: process RSS growth while loading, divided by the records loaded (target: 1M records in at most 1 GiB).");
    Ok(table)
}
