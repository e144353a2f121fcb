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
    /// Log entries read while waiting for the server to serve.
    pub(crate) startup: Vec<serde_json::Value>,
}

impl ServerProcess {
    /// Starts `tradewire serve --listen 127.0.0.1:0 --log-format json` with
    /// `args` after them, and waits until it serves.
    pub(crate) fn start(args: &[&std::ffi::OsStr]) -> ServerProcess {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_tradewire")),
            "127.0.0.1:0",
            args,
        )
    }

    /// As `start`, listening on `addr`: a restarted server on its
    /// predecessor's port.
    pub(crate) fn start_at(addr: SocketAddr, args: &[&std::ffi::OsStr]) -> ServerProcess {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_tradewire")),
            &addr.to_string(),
            args,
        )
    }

    /// As `start`, with the process's open-file limit (soft and hard) at
    /// `limit`, set by the shell before it runs the binary.
    pub(crate) fn start_with_file_limit(limit: u32, args: &[&std::ffi::OsStr]) -> ServerProcess {
        Self::start_under(&format!("ulimit -n {limit}"), args)
    }

    /// As `start`, after the shell runs `setup` (a `ulimit` line).
    pub(crate) fn start_under(setup: &str, args: &[&std::ffi::OsStr]) -> ServerProcess {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("{setup} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_tradewire"));
        Self::spawn(shell, "127.0.0.1:0", args)
    }

    fn spawn(mut command: Command, listen: &str, args: &[&std::ffi::OsStr]) -> ServerProcess {
        let mut child = command
            .args(["serve", "--listen", listen, "--log-format", "json"])
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
        let mut startup = Vec::new();
        let serving = loop {
            let entry: serde_json::Value = log
                .recv_timeout(Duration::from_secs(60))
                .expect("tradewire serves within 60 s");
            if entry["fields"]["message"] == "serving tradewire.v1" {
                break entry;
            }
            startup.push(entry);
        };
        let mut server = ServerProcess {
            child,
            addr: "0.0.0.0:0".parse().expect("placeholder"),
            log,
            startup,
        };
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

    /// The first security event of `kind` from now on.
    pub(crate) fn wait_for_event(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let entry = self
                .log
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {kind:?} event within 60 s"));
            if entry["fields"]["event"] == kind {
                return entry;
            }
        }
    }

    /// CPU time the process has used (user + system), from /proc.
    pub(crate) fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // The kernel's USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
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
