use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;

use super::*;

fn config(max_connections: usize) -> AcceptConfig {
    AcceptConfig {
        max_connections,
        handshake_timeout: Duration::from_secs(5),
        tcp_keepalive: Some(Duration::from_secs(60)),
        tls: None,
    }
}

async fn listen(config: AcceptConfig) -> (SocketAddr, ReceiverStream<io::Result<Connection>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (
        addr,
        accepted_connections(listener, config, SecurityLog::default()),
    )
}

#[test]
fn only_a_connections_own_accept_errors_are_skipped_without_backing_off() {
    let os = io::Error::from_raw_os_error;
    for skipped in [
        io::Error::from(io::ErrorKind::ConnectionAborted),
        io::Error::from(io::ErrorKind::ConnectionReset),
        os(103), // ECONNABORTED
        os(71),  // EPROTO
        os(113), // EHOSTUNREACH
    ] {
        assert!(is_one_connections(&skipped), "{skipped}");
    }
    for backs_off in [
        os(24),  // EMFILE
        os(23),  // ENFILE
        os(12),  // ENOMEM
        os(105), // ENOBUFS
        os(22),  // EINVAL: the listener itself is broken
        io::Error::other("anything else"),
    ] {
        assert!(!is_one_connections(&backs_off), "{backs_off}");
    }
}

#[tokio::test]
async fn a_connection_with_the_preface_is_served_and_the_preface_replayed() {
    let (addr, mut incoming) = listen(config(4)).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(PREFACE).await.unwrap();
    client.write_all(b"more").await.unwrap();
    let mut accepted = incoming.next().await.unwrap().unwrap();
    assert_eq!(accepted.info.addr, client.local_addr().unwrap());
    let mut read = vec![0u8; PREFACE.len() + 4];
    accepted.read_exact(&mut read).await.unwrap();
    assert_eq!(&read[..PREFACE.len()], PREFACE);
    assert_eq!(&read[PREFACE.len()..], b"more");
}

/// Through the accept loop itself: a test that called
/// `set_socket_options` would pass with the call removed from the path.
#[tokio::test]
async fn accepted_sockets_get_nodelay_and_keepalive_or_not() {
    for keepalive in [Some(Duration::from_secs(60)), None] {
        let (addr, mut incoming) = listen(AcceptConfig {
            tcp_keepalive: keepalive,
            ..config(4)
        })
        .await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        assert!(!client.nodelay().unwrap(), "sockets start without it");
        client.write_all(PREFACE).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        let Io::Plain(socket) = &accepted.io else {
            panic!("a plaintext listener yields plain sockets");
        };
        assert!(socket.nodelay().unwrap(), "TCP_NODELAY");
        assert_eq!(
            socket2::SockRef::from(socket).keepalive().unwrap(),
            keepalive.is_some(),
            "SO_KEEPALIVE"
        );
    }
}

#[tokio::test]
async fn a_connection_without_the_preface_is_closed_after_the_timeout() {
    let (addr, mut incoming) = listen(AcceptConfig {
        handshake_timeout: Duration::from_millis(200),
        ..config(4)
    })
    .await;
    let connected = std::time::Instant::now();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(&PREFACE[..10]).await.unwrap();
    for socket in [&mut idle, &mut partial] {
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("the server closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    }
    assert!(
        connected.elapsed() >= Duration::from_millis(180),
        "closed by the timeout, not before it"
    );
    // A well-behaved client still gets through.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(PREFACE).await.unwrap();
    assert!(incoming.next().await.unwrap().is_ok());
}

#[tokio::test]
async fn connections_past_the_maximum_are_closed_at_once_until_one_leaves() {
    let (addr, mut incoming) = listen(config(2)).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(PREFACE).await.unwrap();
        held.push((client, incoming.next().await.unwrap().unwrap()));
    }
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    // Well under the 5 s handshake timeout, so waiting for it fails.
    let read = tokio::time::timeout(Duration::from_secs(1), refused.read(&mut buf))
        .await
        .expect("refused at once, not after the handshake timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    drop(held.pop());
    // The slot is free again once the connection is gone.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(PREFACE).await.unwrap();
    assert!(incoming.next().await.unwrap().is_ok());
}

/// HEADERS frames opening `streams` (5-byte payloads).
fn headers(streams: &[u8]) -> Vec<u8> {
    let mut frames = Vec::new();
    for &id in streams {
        frames.extend_from_slice(&[0, 0, 5, 0x1, 0x4, 0, 0, 0, id, 1, 2, 3, 4, 5]);
    }
    frames
}

/// Counts the wakes of the task it stands for.
struct Wakes(AtomicUsize);

impl futures_util::task::ArcWake for Wakes {
    fn wake_by_ref(wakes: &Arc<Self>) {
        wakes.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn the_first_write_after_a_read_of_several_calls_waits_one_turn_of_its_task() {
    let (addr, mut incoming) = listen(config(4)).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(PREFACE).await.unwrap();
    let mut accepted = incoming.next().await.unwrap().unwrap();
    let mut preface = vec![0u8; PREFACE.len()];
    accepted.read_exact(&mut preface).await.unwrap();
    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    let waker = futures_util::task::waker(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);
    let mut write = |accepted: &mut Connection| Pin::new(accepted).poll_write(&mut cx, b"answer");

    // One call read: its answer is written at once.
    client.write_all(&headers(&[1])).await.unwrap();
    let mut read = vec![0u8; headers(&[1]).len()];
    accepted.read_exact(&mut read).await.unwrap();
    assert!(
        matches!(write(&mut accepted), Poll::Ready(Ok(6))),
        "one call: no wait"
    );

    // Two calls in one read: the first write waits a turn.
    client.write_all(&headers(&[3, 5])).await.unwrap();
    let mut read = vec![0u8; headers(&[3, 5]).len()];
    accepted.read_exact(&mut read).await.unwrap();
    assert!(write(&mut accepted).is_pending(), "the first write waits");
    assert_eq!(
        wakes.0.load(Ordering::Relaxed),
        1,
        "and wakes its task again"
    );
    assert!(matches!(write(&mut accepted), Poll::Ready(Ok(6))));
    assert!(
        matches!(write(&mut accepted), Poll::Ready(Ok(6))),
        "no read since: no wait"
    );
    assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
    let mut answers = [0u8; 18];
    client.read_exact(&mut answers).await.unwrap();
    assert_eq!(&answers, b"answeransweranswer");
}
