//! nats-server processes for the `replicas` mode: one JetStream node, or a
//! cluster of three, on loopback ports with temporary store directories,
//! killed on drop. Debian's `nats-server` package provides the binary.

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

/// One node.
pub(crate) fn single() -> Result<Nats, BenchError> {
    start(&[], "single")
}

/// Three nodes routed to each other.
pub(crate) fn cluster() -> Result<Vec<Nats>, BenchError> {
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
            )
        })
        .collect()
}

fn start(extra: &[&str], tag: &str) -> Result<Nats, BenchError> {
    let store = std::env::temp_dir().join(format!(
        "tradewire-bench-nats-{}-{tag}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let mut child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
        .arg(&store)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nats-server: {e} (apt-get install nats-server)"))?;
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
