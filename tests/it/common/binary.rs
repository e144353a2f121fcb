//! The real `tradewire` binary as a child process on 127.0.0.1:0, with its
//! JSON log read line by line: the bound address is taken from it, and
//! tests can wait for a message in it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The server process; killed if a failing test unwinds past it.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: mpsc::Receiver<serde_json::Value>,
}

impl ServerProcess {
    /// Starts `tradewire serve --listen 127.0.0.1:0 --log-format json` with
    /// `args` after them, and waits until it serves.
    pub(crate) fn start(args: &[&std::ffi::OsStr]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tradewire"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tradewire");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, log) = mpsc::channel();
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let Ok(entry) = serde_json::from_str(&line) else {
                    continue;
                };
                if lines.send(entry).is_err() {
                    return;
                }
            }
        });
        let mut server = ServerProcess {
            child,
            addr: "0.0.0.0:0".parse().expect("placeholder"),
            log,
        };
        let serving = server.wait_for_log("serving tradewire.v1");
        server.addr = serving["fields"]["local_addr"]
            .as_str()
            .expect("local_addr")
            .parse()
            .expect("socket address");
        server
    }

    /// The first log entry from now on whose message is `message`.
    pub(crate) fn wait_for_log(&mut self, message: &str) -> serde_json::Value {
        loop {
            let entry = self
                .log
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no log line {message:?} within 60 s"));
            if entry["fields"]["message"] == message {
                return entry;
            }
        }
    }

    /// Sends `signal` (a `kill` name such as "HUP") to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal}");
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL tradewire");
        self.child.wait().expect("reap tradewire");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
