//! The per-connection stream limit, enforced and not only advertised: a
//! client that ignores SETTINGS_MAX_CONCURRENT_STREAMS gets its extra
//! stream refused. The `h2` crate queues streams past the peer's limit
//! instead of sending them, so these frames are written by hand.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tradewire::{Config, Limits};

use crate::common::TestServer;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const REFUSED_STREAM: u32 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A POST of `path` in HPACK with no dynamic table: indexed `:method POST`
/// and `:scheme http`, then literals without indexing.
fn request_head(path: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86];
    for (name_index, value) in [(4u8, path), (1, "localhost"), (31, "application/grpc")] {
        if name_index < 15 {
            block.push(name_index);
        } else {
            block.extend_from_slice(&[0x0f, name_index - 15]);
        }
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block.extend_from_slice(&[0x00, 2]);
    block.extend_from_slice(b"te");
    block.push(8);
    block.extend_from_slice(b"trailers");
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_the_limit_is_refused_and_the_ones_within_it_are_not() {
    let limit = Limits::default().max_concurrent_streams;
    let server = TestServer::with_config(Config::default()).await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    let head = request_head("/tradewire.v1.TradeService/GetTradeRecord");
    // Streams 1, 3, ...: `limit` within it, then one more, none ended, so
    // all of them stay open while the server reads the next.
    let streams: Vec<u32> = (0..=limit).map(|i| 2 * i + 1).collect();
    for id in &streams {
        out.extend(frame(HEADERS, END_HEADERS, *id, &head));
    }
    socket.write_all(&out).await.unwrap();
    let extra = *streams.last().unwrap();

    let mut refused = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut header = [0u8; 9];
        loop {
            socket.read_exact(&mut header).await.unwrap();
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let (kind, flags) = (header[3], header[4]);
            let stream =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & !(1 << 31);
            let mut payload = vec![0u8; len];
            socket.read_exact(&mut payload).await.unwrap();
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    socket
                        .write_all(&frame(SETTINGS, ACK, 0, &[]))
                        .await
                        .unwrap();
                }
                GOAWAY => panic!("the connection was closed, not one stream refused"),
                RST_STREAM => {
                    let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    refused.push((stream, code));
                    if stream == extra {
                        return;
                    }
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "stream {extra} was never refused");
    assert_eq!(
        refused,
        vec![(extra, REFUSED_STREAM)],
        "only stream {} of {}, one past the limit of {limit}, is refused",
        limit + 1,
        limit + 1
    );
}
