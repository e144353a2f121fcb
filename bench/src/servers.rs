//! Servers under test, as child processes pinned to their own core: the
//! real `tradewire` binary, or one of this binary's floor servers.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use tonic::transport::{Channel, Endpoint};

pub(crate) type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// A server child process, killed on drop.
pub(crate) struct ServerProcess {
    child: std::process::Child,
    pub addr: SocketAddr,
    /// Its log lines after the "serving" line, as they arrive.
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn cpu_micros(&self) -> u64 {
        crate::proc::cpu_micros(self.pid()).unwrap_or(0)
    }

    pub(crate) fn rss_bytes(&self) -> u64 {
        crate::proc::rss_bytes(self.pid()).unwrap_or(0)
    }

    /// The log lines it has written since it started serving.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub(crate) async fn connect(&self) -> Result<Channel, BenchError> {
        Ok(Endpoint::from_shared(format!("http://{}", self.addr))?
            .tcp_nodelay(true)
            .connect()
            .await?)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sibling(name: &str) -> Result<PathBuf, BenchError> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found; build it first (cargo build --release --bins)",
            path.display()
        )
        .into())
    }
}

/// Starts `program args` on `core` (with taskset when it is there) and
/// waits for its "serving" log line, which names the bound address.
fn spawn(
    program: &Path,
    args: &[String],
    core: Option<usize>,
) -> Result<ServerProcess, BenchError> {
    let mut command = match core {
        Some(core) if Path::new("/usr/bin/taskset").exists() => {
            let mut c = Command::new("/usr/bin/taskset");
            c.arg("-c").arg(core.to_string()).arg(program);
            c
        }
        _ => Command::new(program),
    };
    let mut child = command
        .args(args)
        // The binary's own default level: a call's INFO log line is part
        // of what each call costs, as it is in production.
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            return Err(format!("{} exited before serving", program.display()).into());
        };
        let line = line?;
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if entry["fields"]["message"] == "serving tradewire.v1" {
            break entry["fields"]["local_addr"]
                .as_str()
                .ok_or("no local_addr")?
                .parse()?;
        }
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&log);
    // Every line is read, so the server never blocks on a full pipe; the
    // per-call lines are not kept (a run makes millions of them).
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains(r#""target":"tradewire::calls""#) {
                continue;
            }
            if let Ok(mut kept) = kept.lock() {
                kept.push(line);
            }
        }
    });
    Ok(ServerProcess { child, addr, log })
}

/// The real server, in memory or on `data_dir` with `fsync`.
pub(crate) fn tradewire(
    core: Option<usize>,
    data_dir: Option<(&Path, &str)>,
    extra: &[&str],
) -> Result<ServerProcess, BenchError> {
    let mut args = serve_args();
    match data_dir {
        None => args.push("--in-memory".into()),
        Some((dir, fsync)) => {
            args.extend([
                "--data-dir".to_string(),
                dir.display().to_string(),
                "--fsync".into(),
                fsync.into(),
            ]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn(&sibling("tradewire")?, &args, core)
}

/// A replica of the `jetstream` backend on the NATS servers at `urls`.
pub(crate) fn replica(
    core: Option<usize>,
    urls: &[String],
    extra: &[&str],
) -> Result<ServerProcess, BenchError> {
    let mut args = serve_args();
    args.extend(["--backend".into(), "jetstream".into()]);
    for url in urls {
        args.extend(["--nats-url".into(), url.clone()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn(&sibling("tradewire")?, &args, core)
}

fn serve_args() -> Vec<String> {
    // The fan-out scenarios hold up to 300 streams on one connection, past
    // the default of 256 a connection may open.
    [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--max-concurrent-streams",
        "1024",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One of this binary's floor servers (`floor-unary`, `floor-fanout`),
/// with `extra` flags (`--pre-encoded`).
pub(crate) fn floor_with(
    kind: &str,
    core: Option<usize>,
    extra: &[&str],
) -> Result<ServerProcess, BenchError> {
    let mut args = vec![kind.to_string(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn(&std::env::current_exe()?, &args, core)
}

/// One of this binary's floor servers (`floor-unary`, `floor-fanout`).
pub(crate) fn floor(kind: &str, core: Option<usize>) -> Result<ServerProcess, BenchError> {
    floor_with(kind, core, &[])
}

/// Prints the line `spawn` waits for.
pub(crate) fn announce(addr: SocketAddr) {
    println!(r#"{{"fields":{{"message":"serving tradewire.v1","local_addr":"{addr}"}}}}"#);
}
