//! A gRPC client that is not tonic: one raw HTTP/2 connection (the `h2`
//! crate) over a plain `TcpStream` with Nagle's algorithm left on, as many
//! clients in other languages have it. It frames and unframes gRPC messages
//! itself, so it sees exactly what the server writes.

use std::future::Future;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio::net::TcpStream;
use tonic::codegen::http;

pub(crate) struct RawGrpc {
    client: h2::client::SendRequest<Bytes>,
    authority: String,
}

/// A finished unary call: its grpc-status and the response message bytes.
pub(crate) struct RawReply {
    pub grpc_status: String,
    pub message: Bytes,
    /// The status came in a HEADERS frame that ended the stream.
    pub trailers_only: bool,
    /// The message's compressed flag was set.
    pub compressed: bool,
}

impl RawGrpc {
    pub(crate) async fn connect(addr: std::net::SocketAddr) -> RawGrpc {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        assert!(
            !tcp.nodelay().expect("nodelay"),
            "the client keeps Nagle on"
        );
        let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        RawGrpc {
            client,
            authority: addr.to_string(),
        }
    }

    /// A call of `path` whose request never ends: headers, no message, no
    /// end of stream. Resolves to the grpc-status the server answers with.
    pub(crate) async fn half_open(&mut self, path: &str) -> impl Future<Output = String> + use<> {
        let head = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request head");
        let mut client = self.client.clone().ready().await.expect("h2 ready");
        let (response, body_out) = client.send_request(head, false).expect("send request");
        async move {
            // Held open until the answer comes.
            let _body_out = body_out;
            status_of(response).await
        }
    }

    /// A call of `path` whose request body is `chunks`, sent as they are
    /// (flow control permitting); resolves to the grpc-status answered.
    pub(crate) async fn send_chunks(&mut self, path: &str, chunks: Vec<Bytes>) -> String {
        let head = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request head");
        let mut client = self.client.clone().ready().await.expect("h2 ready");
        let (response, mut body_out) = client.send_request(head, false).expect("send request");
        let sender = tokio::spawn(async move {
            let last = chunks.len().saturating_sub(1);
            for (i, chunk) in chunks.into_iter().enumerate() {
                body_out.reserve_capacity(chunk.len());
                let granted = std::future::poll_fn(|cx| body_out.poll_capacity(cx)).await;
                if !matches!(granted, Some(Ok(_))) || body_out.send_data(chunk, i == last).is_err()
                {
                    return;
                }
            }
        });
        let status = status_of(response).await;
        sender.abort();
        status
    }

    /// The SETTINGS_MAX_CONCURRENT_STREAMS the server at `addr` sends.
    pub(crate) async fn advertised_max_streams(addr: std::net::SocketAddr) -> usize {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (_client, mut connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        std::future::poll_fn(|cx| {
            let _ = std::pin::Pin::new(&mut connection).poll(cx);
            // Until the server's SETTINGS arrive, h2 assumes no limit.
            match connection.max_concurrent_send_streams() {
                usize::MAX if tokio::time::Instant::now() < deadline => {
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
                max => std::task::Poll::Ready(max),
            }
        })
        .await
    }

    /// One unary call of `path` with `request`.
    pub(crate) async fn unary(&mut self, path: &str, request: &impl Message) -> RawReply {
        self.unary_with(path, request, &[]).await
    }

    /// One unary call of `path` with `request` and extra request `headers`.
    pub(crate) async fn unary_with(
        &mut self,
        path: &str,
        request: &impl Message,
        headers: &[(&str, &str)],
    ) -> RawReply {
        let payload = request.encode_to_vec();
        let mut framed = BytesMut::with_capacity(5 + payload.len());
        framed.put_u8(0);
        framed.put_u32(u32::try_from(payload.len()).expect("small request"));
        framed.put_slice(&payload);
        let head = headers
            .iter()
            .fold(
                http::Request::post(format!("http://{}{path}", self.authority))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers"),
                |head, (name, value)| head.header(*name, *value),
            )
            .body(())
            .expect("request head");
        let mut client = self.client.clone().ready().await.expect("h2 ready");
        let (response, mut body_out) = client.send_request(head, false).expect("send request");
        body_out
            .send_data(framed.freeze(), true)
            .expect("send body");
        let response = response.await.expect("response head");
        let headers_status = response.headers().get("grpc-status").cloned();
        let mut body = response.into_body();
        let trailers_only = headers_status.is_some() && body.is_end_stream();
        let mut received = BytesMut::new();
        while let Some(chunk) = body.data().await {
            received.extend_from_slice(&chunk.expect("data frame"));
        }
        let trailers = body.trailers().await.expect("trailers");
        // Flow control is released only once the call is over: a
        // WINDOW_UPDATE sent earlier would carry the ACK that a server
        // with Nagle on waits for, and hide the stall this client exists
        // to find (grpcio and grpc-js batch their window updates too).
        let _ = body.flow_control().release_capacity(received.len());
        let grpc_status = trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or(headers_status.as_ref())
            .and_then(|v| v.to_str().ok())
            .unwrap_or("missing")
            .to_string();
        let mut received = received.freeze();
        let compressed = received.first() == Some(&1);
        let message = if received.len() >= 5 {
            received.advance(1);
            let len = received.get_u32() as usize;
            received.split_to(len.min(received.len()))
        } else {
            Bytes::new()
        };
        RawReply {
            grpc_status,
            message,
            trailers_only,
            compressed,
        }
    }
}

/// The grpc-status of an answer: from its trailers, or from its headers
/// when it is trailers-only. The body is read to its end.
async fn status_of(response: h2::client::ResponseFuture) -> String {
    let response = response.await.expect("response head");
    let in_headers = response.headers().get("grpc-status").cloned();
    let mut body = response.into_body();
    while body.data().await.is_some() {}
    let trailers = body.trailers().await.ok().flatten();
    trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .or(in_headers.as_ref())
        .and_then(|v| v.to_str().ok())
        .unwrap_or("missing")
        .to_string()
}
