//! Real `nats-server` processes with JetStream, on free loopback ports and
//! temporary store directories: one node, or a cluster of three.
//!
//! Without `nats-server` on the machine, `NatsServer::start` says so and
//! returns `None` (the test then passes without running), unless
//! `TRADEWIRE_REQUIRE_NATS=1`, as in CI, where it fails.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::TempDir;

/// A running nats-server, stopped on drop.
pub(crate) struct NatsServer {
    child: Option<Child>,
    pub(crate) port: u16,
    args: Vec<String>,
    _store: std::sync::Arc<TempDir>,
}

fn binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var("TRADEWIRE_REQUIRE_NATS").as_deref() != Ok("1"),
            "TRADEWIRE_REQUIRE_NATS=1 but nats-server is not installed (apt-get install nats-server)"
        );
        eprintln!(
            "NOT RUN: this test needs nats-server with JetStream (apt-get install nats-server); CI sets TRADEWIRE_REQUIRE_NATS=1"
        );
    }
    found
}

/// A free loopback port (for cluster routes, which must be known ahead).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl NatsServer {
    /// One JetStream node on a free port, or `None` without nats-server.
    pub(crate) fn start() -> Option<NatsServer> {
        let binary = binary()?;
        let store = std::sync::Arc::new(TempDir::new("nats"));
        let args = vec![
            "-js".into(),
            "-a".into(),
            "127.0.0.1".into(),
            "-sd".into(),
            store.path().display().to_string(),
        ];
        Some(Self::spawn(&binary, args, 0, store))
    }

    /// A cluster of three JetStream nodes, or `None` without nats-server.
    pub(crate) fn cluster() -> Option<[NatsServer; 3]> {
        let binary = binary()?;
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_urls = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes: Vec<NatsServer> = (0..3)
            .map(|i| {
                let store = std::sync::Arc::new(TempDir::new("nats-cluster"));
                let args = vec![
                    "-js".into(),
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-sd".into(),
                    store.path().display().to_string(),
                    "--server_name".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "tradewire-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".into(),
                    route_urls.clone(),
                ];
                Self::spawn(&binary, args, 0, store)
            })
            .collect();
        nodes.try_into().ok()
    }

    fn spawn(
        binary: &PathBuf,
        args: Vec<String>,
        port: u16,
        store: std::sync::Arc<TempDir>,
    ) -> NatsServer {
        let port_arg = if port == 0 {
            "-1".to_owned()
        } else {
            port.to_string()
        };
        let mut child = Command::new(binary)
            .args(&args)
            .args(["-p", &port_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server");
        let stderr = child.stderr.take().expect("stderr");
        let (lines, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let _ = lines.send(line);
            }
        });
        let mut port = port;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let line = log
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_else(|_| panic!("nats-server is not ready within 20 s: {seen:#?}"));
            seen.push(line.clone());
            if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
                port = addr
                    .trim()
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("nats-server's port");
            }
            if line.contains("Server is ready") {
                break;
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || while log.recv().is_ok() {});
        NatsServer {
            child: Some(child),
            port,
            args,
            _store: store,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL) and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store directory.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let binary = binary().expect("nats-server was there a moment ago");
        let again = Self::spawn(&binary, self.args.clone(), self.port, self._store.clone());
        *self = again;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
