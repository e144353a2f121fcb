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
//! - The first write after a read that opened several calls waits one turn
//!   (`Connection::wait_a_turn`), so their answers leave in one write.
//! - An accept error that belongs to one connection (its peer reset or
//!   aborted it first, or a network error pending on it) is skipped. Any
//!   other (out of file descriptors, ENOMEM, ENOBUFS, ...) is the
//!   process's, and would come back at once: the loop backs off, doubling
//!   up to a second, and logs it at WARN, rate-limited.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::opened_streams::OpenedStreams;
use super::security_log::{SecurityEvent, SecurityLog};
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

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An accepted connection that passed its handshake: the preface already
/// read is replayed to tonic first. It holds a connection slot until
/// dropped.
pub(crate) struct Connection {
    preface: Bytes,
    io: Io,
    info: Peer,
    /// Where the client's bytes are in their frames.
    streams: OpenedStreams,
    /// A read opened more than one call since the last write: the next
    /// write waits one turn (`wait_a_turn`).
    write_waits: bool,
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
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        let opened = self.streams.feed(&buf.filled()[before..]);
        if opened > 1 {
            self.write_waits = true;
        }
        read
    }
}

impl Connection {
    /// The first write after a read that opened several calls waits one
    /// turn of the connection's task. hyper answers each call on a task of
    /// its own, and h2 wakes the connection's task as soon as one answer
    /// is ready; tokio runs a task woken that way next, so without the
    /// wait a connection whose client sent many calls at once wrote once
    /// per answer. Waking itself puts the connection behind the calls
    /// already woken, and their answers leave in one write. After a read
    /// of one call there is nothing to wait for, and the extra turn would
    /// cost the call (BENCHMARKS.md, `clients`, 1x1 and 4x1).
    fn wait_a_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::take(&mut self.write_waits) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.wait_a_turn(cx));
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.wait_a_turn(cx));
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
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
                    SecurityEvent::OutOfFileDescriptors
                } else {
                    SecurityEvent::AcceptFailed
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
                SecurityEvent::ConnectionRefused,
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
                    log.event(
                        SecurityEvent::HandshakeFailed,
                        Some(info.addr),
                        &error.to_string(),
                    );
                }
                Err(_) => {
                    log.event(
                        SecurityEvent::HandshakeTimeout,
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
    io.read_exact(&mut preface).await?;
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
        write_waits: false,
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
mod tests;
