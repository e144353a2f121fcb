use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use super::*;

/// An output that hands every write to the test.
struct Sink(Sender<Vec<u8>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let _ = self.0.send(bytes.to_vec());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn sink() -> (Sink, Receiver<Vec<u8>>) {
    let (send, receive) = channel();
    (Sink(send), receive)
}

fn log(writer: &LogWriter, line: &str) {
    writer.make_writer().write_all(line.as_bytes()).unwrap();
}

/// Waits (boundedly) until `written` has given exactly `expected`.
fn arrives(written: &Receiver<Vec<u8>>, expected: &[u8]) {
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let left = Duration::from_secs(5).saturating_sub(started.elapsed());
        let bytes = written
            .recv_timeout(left)
            .expect("the lines are written out while the guard lives");
        seen.extend_from_slice(&bytes);
    }
    assert_eq!(seen, expected);
}

/// The second line comes after the writer thread has written the first
/// and gone back to waiting: only its interval brings it out.
#[test]
fn lines_are_written_out_in_order_without_waiting_for_the_guard() {
    let (out, written) = sink();
    let (writer, _guard) = log_writer(out).unwrap();
    log(&writer, "first\n");
    arrives(&written, b"first\n");
    log(&writer, "second\n");
    log(&writer, "third\n");
    arrives(&written, b"second\nthird\n");
}

#[test]
fn dropping_the_guard_writes_out_every_line() {
    let (out, written) = sink();
    let (writer, guard) = log_writer(out).unwrap();
    for n in 0..1000 {
        log(&writer, &format!("line {n}\n"));
    }
    drop(guard);
    let all: Vec<u8> = written.try_iter().flatten().collect();
    let expected: String = (0..1000).map(|n| format!("line {n}\n")).collect();
    assert_eq!(String::from_utf8(all).unwrap(), expected);
}

#[test]
fn past_the_limit_lines_are_dropped_whole_and_counted() {
    let shared = Shared {
        pending: Mutex::new(Pending::default()),
        max_buffered: 20,
        writer: thread::current(),
    };
    let mut line = Line { shared: &shared };
    for text in ["0123456789\n", "abcdefgh\n", "too much\n", "more\n"] {
        assert_eq!(line.write(text.as_bytes()).unwrap(), text.len());
    }
    shared.lock().closed = true;
    let mut out = Vec::new();
    write_out(&shared, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "tradewire: 2 log lines dropped: the log's output did not keep up\n\
         0123456789\nabcdefgh\n"
    );
}
