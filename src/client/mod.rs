//! `tradewire::client`: a client for the tradewire.v1 API that does once
//! what every caller would otherwise write again.
//!
//! - [`Client::connect`] opens a channel with connect and request timeouts,
//!   HTTP/2 keepalive, and optionally TLS (a CA to trust, and a client
//!   certificate for mTLS) and a bearer token sent on every call.
//! - [`Client::trade`], [`Client::reports`] and [`Client::announcements`]
//!   are the generated clients on that channel, for unary calls; each call
//!   carries the request timeout as its `grpc-timeout`.
//! - [`Client::subscribe_reports`] and [`Client::watch_announcements`]
//!   return a [`Subscription`]: a `Stream` that reconnects with jittered
//!   exponential backoff, resumes after the last sequence it saw (from an
//!   item, a caught-up marker or a heartbeat) and drops duplicates, so its
//!   consumer sees every sequence once, in order, across server restarts.
//!
//! The client imports nothing of the server; it speaks only `pb`.

mod subscription;

use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::pb::announcement_service_client::AnnouncementServiceClient;
use crate::pb::export_report_service_client::ExportReportServiceClient;
use crate::pb::trade_service_client::TradeServiceClient;

pub use subscription::{
    Announcements, Backoff, Event, Reports, StreamKind, Subscription, SubscriptionError,
};

/// Export reports across reconnects ([`Client::subscribe_reports`]).
pub type ReportSubscription = Subscription<Reports>;
/// Announcements across reconnects ([`Client::watch_announcements`]).
pub type AnnouncementSubscription = Subscription<Announcements>;

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The deadline of each unary call (not of subscriptions).
    pub request_timeout: Duration,
    /// HTTP/2 keepalive ping interval; a dead connection is noticed within
    /// it and its timeout.
    pub keepalive: Duration,
    /// A bearer token (`tw_...`) sent on every call.
    pub token: Option<String>,
    /// TLS; required for an `https://` URL.
    pub tls: Option<ClientTls>,
    /// How subscriptions wait between reconnects.
    pub backoff: Backoff,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(30),
            token: None,
            tls: None,
            backoff: Backoff::default(),
        }
    }
}

/// TLS settings of a client.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM of the CA that signed the server's certificate.
    pub ca_pem: Vec<u8>,
    /// The name to check the server's certificate against, when it is not
    /// the URL's host.
    pub domain: Option<String>,
    /// PEM certificate chain and key, for a server that requires client
    /// certificates.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL or TLS settings are not usable.
    #[error("invalid client settings: {0}")]
    Invalid(String),
    /// The server could not be reached.
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
}

/// Adds the token and, for unary calls, the deadline to every request.
#[derive(Debug, Clone)]
pub struct CallSettings {
    token: Option<AsciiMetadataValue>,
    timeout: Option<Duration>,
}

impl Interceptor for CallSettings {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        Ok(request)
    }
}

/// A channel intercepted with [`CallSettings`].
pub type Authed = InterceptedService<Channel, CallSettings>;

/// A connected client; cheap to clone (the channel is shared).
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    token: Option<AsciiMetadataValue>,
    options: ClientOptions,
}

impl Client {
    /// Connects to `url` (`http://host:port` or `https://host:port`) with
    /// the default options.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    /// Connects to `url` with `options`.
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| ClientError::Invalid(format!("{url}: {e}")))?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(options.keepalive)
            .keep_alive_timeout(options.keepalive)
            .keep_alive_while_idle(true);
        if let Some(tls) = &options.tls {
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some(domain) = &tls.domain {
                config = config.domain_name(domain.clone());
            }
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(config)?;
        }
        let token = match &options.token {
            Some(token) => Some(
                MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| ClientError::Invalid("the token is not printable ASCII".into()))?,
            ),
            None => None,
        };
        let channel = endpoint.connect().await?;
        Ok(Client {
            channel,
            token,
            options,
        })
    }

    fn settings(&self, timeout: Option<Duration>) -> CallSettings {
        CallSettings {
            token: self.token.clone(),
            timeout,
        }
    }

    fn unary(&self) -> Authed {
        InterceptedService::new(
            self.channel.clone(),
            self.settings(Some(self.options.request_timeout)),
        )
    }

    /// TradeService, for unary calls.
    pub fn trade(&self) -> TradeServiceClient<Authed> {
        TradeServiceClient::new(self.unary())
    }

    /// ExportReportService, for unary calls.
    pub fn reports(&self) -> ExportReportServiceClient<Authed> {
        ExportReportServiceClient::new(self.unary())
    }

    /// AnnouncementService, for unary calls.
    pub fn announcements(&self) -> AnnouncementServiceClient<Authed> {
        AnnouncementServiceClient::new(self.unary())
    }

    /// A channel for streams: the token, and no deadline.
    fn streaming(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), self.settings(None))
    }

    /// Export reports matching `filter`, after sequence `after` (`None`:
    /// from now), across reconnects.
    pub fn subscribe_reports(
        &self,
        filter: Option<crate::pb::TradeFilter>,
        after: Option<u64>,
    ) -> ReportSubscription {
        Subscription::start(
            Reports {
                client: ExportReportServiceClient::new(self.streaming()),
                filter,
            },
            after,
            self.options.backoff.clone(),
        )
    }

    /// Announcements matching `filter`, after sequence `after` (`None`:
    /// from now), across reconnects.
    pub fn watch_announcements(
        &self,
        filter: Option<crate::pb::AnnouncementFilter>,
        after: Option<u64>,
    ) -> AnnouncementSubscription {
        Subscription::start(
            Announcements {
                client: AnnouncementServiceClient::new(self.streaming()),
                filter,
            },
            after,
            self.options.backoff.clone(),
        )
    }
}
