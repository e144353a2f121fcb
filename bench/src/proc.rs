//! Process measurements from /proc and CPU pinning.

use std::fs;

/// The unit of /proc's CPU times: clock ticks per second, which Linux
/// fixes at 100 for user space on every architecture.
const USER_HZ: u64 = 100;

/// CPU time (user + system) of a process, in microseconds.
pub(crate) fn cpu_micros(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / USER_HZ)
}

/// Resident set size of a process, in bytes.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Pins this process (every thread it has, and so those it makes later)
/// to `core`, with util-linux's `taskset`, as the servers under test are.
pub(crate) fn pin_self(core: usize) -> bool {
    std::process::Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// How many cores this process may run on.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
