//! `Config` and `Limits`: everything `serve` needs to know, with the
//! defaults the binary's flags start from.

use std::path::PathBuf;
use std::time::Duration;

use super::TlsFiles;
use crate::hub::HubConfig;
use crate::store::StoreConfig;

/// Limits that keep one client from exhausting the server; each has a flag.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most connections at once; more are closed at once.
    pub max_connections: usize,
    /// Time a new connection has for its TLS handshake and HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// Most concurrent streams (calls) per connection, advertised to the
    /// client as SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// Time a request has to arrive whole (its headers and its message).
    pub receive_timeout: Duration,
    /// Largest request message, in bytes; larger is `RESOURCE_EXHAUSTED`.
    /// At most 4 MiB, tonic's decoding limit.
    pub max_message_bytes: usize,
    /// Most calls being answered at once, over all connections; more are
    /// shed with `RESOURCE_EXHAUSTED`.
    pub max_in_flight: usize,
    /// Deadline of unary calls that send no `grpc-timeout`.
    pub unary_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            max_concurrent_streams: 256,
            receive_timeout: Duration::from_secs(10),
            max_message_bytes: 4 * 1024 * 1024,
            max_in_flight: 4096,
            unary_deadline: Duration::from_secs(30),
        }
    }
}

/// Everything `serve` needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The store: retention, buffers, and whether and how it is durable.
    pub store: StoreConfig,
    /// Subscription limits and defaults.
    pub hub: HubConfig,
    /// Load the demo data set of the seed article at start.
    pub demo: bool,
    /// How long shutdown waits for calls and streams before dropping them.
    pub shutdown_grace: Duration,
    /// HTTP/2 ping interval, so half-open peers are found and reaped.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Idle time before the kernel probes a connection (TCP keepalive);
    /// `None` leaves it off.
    pub tcp_keepalive: Option<Duration>,
    /// Limits per connection, per call and overall.
    pub limits: Limits,
    /// Serve TLS from these files; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    /// The tokens file; `None` turns authentication off.
    pub auth_tokens: Option<PathBuf>,
    /// With tokens, let calls without a token read.
    pub allow_anonymous_read: bool,
    /// Serve Prometheus metrics over HTTP on this address; `None` turns
    /// metrics off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// One INFO span per call, whose parent is the request's W3C
    /// `traceparent`, for a subscriber that exports traces (the binary's
    /// `--otlp-endpoint`). Off: a DEBUG span, which costs nothing at the
    /// default level.
    pub trace_calls: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: StoreConfig::default(),
            hub: HubConfig::default(),
            demo: false,
            shutdown_grace: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Some(Duration::from_secs(60)),
            limits: Limits::default(),
            tls: None,
            auth_tokens: None,
            allow_anonymous_read: false,
            metrics_listen: None,
            trace_calls: false,
        }
    }
}
