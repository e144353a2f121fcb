//! The accept path: every connection tonic serves comes through here.
//!
//! - TCP_NODELAY and TCP keepalive on every socket (without NODELAY a
//!   unary reply's trailers wait for the client's delayed ACK, ~40 ms).
//! - At most `max_connections` at once; past it a new connection is closed
//!   at once instead of queueing.
//! - A connection must finish its TLS handshake (when TLS is on) and send
//!   the HTTP/2 client preface within `handshake_timeout`, or it is
//!   closed: idle and half-open sockets cannot pile up.
//! - Handshakes run on their own tasks, so a slow client never holds up
//!   the accept loop.
//! - An accept error that belongs to one connection (its peer reset or
//!   aborted it first, or a network error pending on it) is skipped. Any
//!   other (out of file descriptors, ENOMEM, ENOBUFS, ...) is the
//!   process's, and would come back at once: the loop backs off, doubling
//!   up to a second, and logs it at WARN, rate-limited.
//! - The streams each client opens are counted as they are read
//!   (`opened_streams`), for `answer_turn`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::opened_streams::OpenedStreams;
use super::security_log::SecurityLog;
use super::tls::TlsAcceptorHandle;
use crate::api::caller::Peer;

/// The first bytes of every HTTP/2 connection (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Accept-loop backoff bounds after an error that is not one connection's.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How the accept path treats connections.
#[derive(Debug, Clone)]
pub(crate) struct AcceptConfig {
    pub(crate) max_connections: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) tcp_keepalive: Option<Duration>,
    pub(crate) tls: Option<TlsAcceptorHandle>,
}

/// A connection's byte stream, plain or TLS; an enum rather than a trait
/// object, so every read and write is a direct call.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Calls `$method` on whichever stream `$io` is.
macro_rules! on_io {
    ($io:expr, $stream:ident => $call:expr) => {
        match $io {
            Io::Plain($stream) => $call,
            Io::Tls($stream) => $call,
        }
    };
}

/// An accepted connection that passed its handshake: the preface already
/// read is replayed to tonic first. It holds a connection slot until
/// dropped.
pub(crate) struct Connection {
    preface: Bytes,
    io: Io,
    info: Peer,
    streams: OpenedStreams,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Connection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.preface.has_remaining() {
            let n = self.preface.len().min(buf.remaining());
            buf.put_slice(&self.preface[..n]);
            self.preface.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let read = on_io!(&mut self.io, s => Pin::new(s).poll_read(cx, buf));
        let opened = self.streams.feed(&buf.filled()[before..]);
        if opened > 0 {
            self.info.calls.opened.fetch_add(opened, Ordering::Relaxed);
        }
        read
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_io!(&mut self.io, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_io!(&mut self.io, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        on_io!(&self.io, s => s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(&mut self.io, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(&mut self.io, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// The connections `listener` accepts that pass their handshake, as the
/// stream tonic serves. The accept loop ends when the stream is dropped.
pub(crate) fn accepted_connections(
    listener: TcpListener,
    config: AcceptConfig,
    log: SecurityLog,
) -> ReceiverStream<io::Result<Connection>> {
    // A small queue: handshakes that finish while tonic is busy wait here.
    let (ready, incoming) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, config, log, ready));
    ReceiverStream::new(incoming)
}

async fn accept_loop(
    listener: TcpListener,
    config: AcceptConfig,
    log: SecurityLog,
    ready: mpsc::Sender<io::Result<Connection>>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let ids = AtomicU64::new(0);
    let mut backoff = MIN_BACKOFF;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ready.closed() => return,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => {
                backoff = MIN_BACKOFF;
                accepted
            }
            Err(error) if is_one_connections(&error) => {
                tracing::debug!(%error, "a connection failed before it was accepted");
                continue;
            }
            Err(error) => {
                let kind = if is_out_of_descriptors(&error) {
                    "out_of_file_descriptors"
                } else {
                    "accept_failed"
                };
                log.event(
                    kind,
                    None,
                    &format!("{error}; accepting again in {backoff:?}"),
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            log.event(
                "connection_refused",
                Some(peer),
                &format!(
                    "the server holds its maximum of {} connections",
                    config.max_connections
                ),
            );
            drop(socket);
            continue;
        };
        let info = Peer {
            id: ids.fetch_add(1, Ordering::Relaxed),
            addr: peer,
            calls: Arc::default(),
        };
        let config = config.clone();
        let log = log.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let handshake = handshake(socket, &config, info.clone(), slot);
            match tokio::time::timeout(config.handshake_timeout, handshake).await {
                Ok(Ok(connection)) => {
                    let _ = ready.send(Ok(connection)).await;
                }
                Ok(Err(error)) => {
                    log.event("handshake_failed", Some(info.addr), &error.to_string());
                }
                Err(_) => {
                    log.event(
                        "handshake_timeout",
                        Some(info.addr),
                        &format!(
                            "no TLS handshake and HTTP/2 preface within {:?}; closed",
                            config.handshake_timeout
                        ),
                    );
                }
            }
        });
    }
}

/// Socket options, the TLS handshake when configured, then the HTTP/2
/// preface, read and checked.
async fn handshake(
    socket: TcpStream,
    config: &AcceptConfig,
    info: Peer,
    slot: OwnedSemaphorePermit,
) -> io::Result<Connection> {
    set_socket_options(&socket, config.tcp_keepalive)?;
    let mut io = match &config.tls {
        None => Io::Plain(socket),
        Some(tls) => Io::Tls(Box::new(tls.acceptor().accept(socket).await?)),
    };
    let mut preface = [0u8; PREFACE.len()];
    on_io!(&mut io, s => s.read_exact(&mut preface).await)?;
    if &preface != PREFACE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an HTTP/2 connection (gRPC needs HTTP/2)",
        ));
    }
    Ok(Connection {
        preface: Bytes::from_static(PREFACE),
        io,
        info,
        streams: OpenedStreams::default(),
        _slot: slot,
    })
}

/// TCP_NODELAY always; TCP keepalive after `keepalive` idle, if set.
fn set_socket_options(socket: &TcpStream, keepalive: Option<Duration>) -> io::Result<()> {
    socket.set_nodelay(true)?;
    if let Some(idle) = keepalive {
        let keepalive = socket2::TcpKeepalive::new().with_time(idle);
        socket2::SockRef::from(socket).set_tcp_keepalive(&keepalive)?;
    }
    Ok(())
}

/// An accept error that only the connection being accepted has: its peer
/// reset or aborted it, or (accept(2) on Linux) a network error already
/// pending on it, which accept reports in its place.
fn is_one_connections(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) || matches!(
        error.raw_os_error(),
        // EPERM (a firewall rule), ENONET, EPROTO, ENOPROTOOPT, EOPNOTSUPP,
        // ENETDOWN, ENETUNREACH, EHOSTDOWN, EHOSTUNREACH.
        Some(1 | 64 | 71 | 92 | 95 | 100 | 101 | 112 | 113)
    )
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    // EMFILE (24): this process; ENFILE (23): the whole system.
    matches!(error.raw_os_error(), Some(23 | 24))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

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

    #[tokio::test]
    async fn the_streams_a_client_opens_are_counted_as_they_are_read() {
        let (addr, mut incoming) = listen(config(4)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(PREFACE).await.unwrap();
        let mut accepted = incoming.next().await.unwrap().unwrap();
        // SETTINGS, then HEADERS on streams 1 and 3 (5-byte payloads).
        let mut frames = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
        for id in [1u8, 3] {
            frames.extend_from_slice(&[0, 0, 5, 0x1, 0x4, 0, 0, 0, id, 1, 2, 3, 4, 5]);
        }
        client.write_all(&frames).await.unwrap();
        let mut read = vec![0u8; PREFACE.len() + frames.len()];
        accepted.read_exact(&mut read).await.unwrap();
        assert_eq!(&read[PREFACE.len()..], &frames[..]);
        assert_eq!(accepted.info.calls.opened.load(Ordering::Relaxed), 2);
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
}
