//! TLS, mTLS, certificate reload and scoped tokens, through a real server
//! and real tonic clients. Each refusal sits next to its positive twin, so
//! that no test passes by refusing everything.

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tradewire::pb;
use tradewire::pb::trade_service_client::TradeServiceClient;
use tradewire::{Config, Scope, TlsFiles};

use crate::common::binary::ServerProcess;
use crate::common::pki::Pki;
use crate::common::*;

const LIMIT: Duration = Duration::from_secs(30);

async fn tls_channel(
    addr: std::net::SocketAddr,
    ca: Certificate,
    identity: Option<Identity>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(ca)
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(LIMIT)
        .connect()
        .await
}

/// A Get of an id that is not stored: NOT_FOUND proves the call was served.
async fn get_missing(channel: Channel) -> Code {
    let request = pb::GetTradeRecordRequest {
        id: "01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
    };
    match tokio::time::timeout(
        LIMIT,
        TradeServiceClient::new(channel).get_trade_record(request),
    )
    .await
    .expect("an answer in time")
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn tls_config(pki: &Pki, client_ca: Option<&Path>) -> Config {
    let (cert, key) = pki.server_files("a");
    Config {
        tls: Some(TlsFiles {
            cert,
            key,
            client_ca: client_ca.map(Path::to_path_buf),
        }),
        ..Config::default()
    }
}

#[tokio::test]
async fn tls_serves_clients_that_trust_its_ca_and_no_others() {
    let pki = Pki::new("tls");
    let server = TestServer::with_config(tls_config(&pki, None)).await;
    let channel = tls_channel(server.addr, pki.ca_certificate(), None)
        .await
        .expect("a client that trusts the CA connects");
    assert_eq!(get_missing(channel).await, Code::NotFound);

    let stranger = Pki::new("stranger");
    let refused = tls_channel(server.addr, stranger.ca_certificate(), None).await;
    assert!(
        refused.is_err(),
        "a client that trusts another CA is refused"
    );

    // Plaintext gets no answer: its preface is not a TLS handshake.
    let plaintext = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(LIMIT)
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        assert_ne!(get_missing(channel).await, Code::NotFound);
    }
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_client_ca() {
    let pki = Pki::new("mtls");
    let ca = pki.write("clients-ca.crt", &pki.ca_pem);
    let server = TestServer::with_config(tls_config(&pki, Some(&ca))).await;

    let with_cert = tls_channel(
        server.addr,
        pki.ca_certificate(),
        Some(pki.client_identity()),
    )
    .await
    .expect("a client with a certificate from the CA connects");
    assert_eq!(get_missing(with_cert).await, Code::NotFound);

    // The handshake may complete before the server checks the client's
    // certificate, so the refusal can come at connect or at the first call.
    let without = tls_channel(server.addr, pki.ca_certificate(), None).await;
    if let Ok(channel) = without {
        assert_ne!(get_missing(channel).await, Code::NotFound);
    }
    let other = Pki::new("other-clients");
    let foreign = tls_channel(
        server.addr,
        pki.ca_certificate(),
        Some(other.client_identity()),
    )
    .await;
    if let Ok(channel) = foreign {
        assert_ne!(get_missing(channel).await, Code::NotFound);
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let old = Pki::new("before");
    let (cert, key) = old.server_files("live");
    let mut server = ServerProcess::start(&[
        "--in-memory".as_ref(),
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ]);
    let kept = tls_channel(server.addr, old.ca_certificate(), None)
        .await
        .unwrap();
    assert_eq!(get_missing(kept.clone()).await, Code::NotFound);

    // Rotate: a certificate from a new CA, in the same files.
    let new = Pki::new("after");
    let issued = new.issue(&["127.0.0.1", "localhost"]);
    std::fs::write(&cert, issued.cert).unwrap();
    std::fs::write(&key, issued.key).unwrap();
    server.signal("HUP");
    server.wait_for_log("SIGHUP: TLS certificate reloaded");

    let fresh = tls_channel(server.addr, new.ca_certificate(), None)
        .await
        .expect("new connections get the new certificate");
    assert_eq!(get_missing(fresh).await, Code::NotFound);
    assert!(
        tls_channel(server.addr, old.ca_certificate(), None)
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
    assert_eq!(
        get_missing(kept).await,
        Code::NotFound,
        "a connection open before the reload goes on"
    );

    // A reload that fails keeps the certificate in use.
    std::fs::write(&key, "not a key").unwrap();
    server.signal("HUP");
    server.wait_for_log("SIGHUP: TLS reload failed; the old certificate stays");
    let still = tls_channel(server.addr, new.ca_certificate(), None)
        .await
        .expect("still served after a failed reload");
    assert_eq!(get_missing(still).await, Code::NotFound);
}

/// Bearer `token` on every call of the client.
fn bearer(token: &str) -> impl Fn(Request<()>) -> Result<Request<()>, tonic::Status> + Clone {
    let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    move |mut request: Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", value.clone());
        Ok(request)
    }
}

/// A server with three tokens: reader (read), ingest (write, publish) and
/// root (admin); returns them in that order.
pub(crate) async fn server_with_tokens(
    allow_anonymous_read: bool,
) -> (TestServer, [String; 3], TempDir) {
    server_with_tokens_and(allow_anonymous_read, Config::default()).await
}

async fn server_with_tokens_and(
    allow_anonymous_read: bool,
    config: Config,
) -> (TestServer, [String; 3], TempDir) {
    let dir = TempDir::new("tokens");
    let mut lines = String::from("# name scopes sha256\n");
    let mut tokens = Vec::new();
    for (name, scopes) in [
        ("reader", vec![Scope::Read]),
        ("ingest", vec![Scope::Write, Scope::Publish]),
        ("root", vec![Scope::Admin]),
    ] {
        let (token, line) = tradewire::create_token(name, &scopes).unwrap();
        lines.push_str(&line);
        lines.push('\n');
        tokens.push(token);
    }
    let path = dir.path().join("tokens");
    std::fs::write(&path, lines).unwrap();
    let server = TestServer::with_config(Config {
        auth_tokens: Some(path),
        allow_anonymous_read,
        ..config
    })
    .await;
    let tokens: [String; 3] = tokens.try_into().unwrap();
    (server, tokens, dir)
}

async fn create(channel: Channel, token: Option<&str>) -> Code {
    let request = pb::CreateTradeRecordRequest {
        trade_record: Some(record("IRN", "RUS", "8708", 2022, 1)),
        request_id: String::new(),
    };
    let answer = match token {
        Some(token) => {
            TradeServiceClient::with_interceptor(channel, bearer(token))
                .create_trade_record(request)
                .await
        }
        None => {
            TradeServiceClient::new(channel)
                .create_trade_record(request)
                .await
        }
    };
    answer.map_or_else(|s| s.code(), |_| Code::Ok)
}

async fn get(channel: Channel, token: Option<&str>) -> Code {
    let request = pb::GetTradeRecordRequest {
        id: "01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
    };
    let answer = match token {
        Some(token) => {
            TradeServiceClient::with_interceptor(channel, bearer(token))
                .get_trade_record(request)
                .await
        }
        None => {
            TradeServiceClient::new(channel)
                .get_trade_record(request)
                .await
        }
    };
    answer.map_or_else(|s| s.code(), |_| Code::Ok)
}

#[tokio::test]
async fn tokens_grant_their_scopes_and_nothing_more() {
    let (server, [reader, ingest, root], _dir) = server_with_tokens(false).await;
    let channel = server.channel().await;

    assert_eq!(get(channel.clone(), None).await, Code::Unauthenticated);
    assert_eq!(
        get(channel.clone(), Some("tw_unknown")).await,
        Code::Unauthenticated
    );
    assert_eq!(get(channel.clone(), Some(&reader)).await, Code::NotFound);
    // A known token in another scheme than Bearer is refused too.
    let mut basic = tonic::Request::new(pb::GetTradeRecordRequest {
        id: "01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
    });
    basic
        .metadata_mut()
        .insert("authorization", format!("Basic {reader}").parse().unwrap());
    let refused = TradeServiceClient::new(channel.clone())
        .get_trade_record(basic)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("Bearer"), "{refused:?}");

    assert_eq!(create(channel.clone(), None).await, Code::Unauthenticated);
    assert_eq!(
        create(channel.clone(), Some(&reader)).await,
        Code::PermissionDenied
    );
    assert_eq!(create(channel.clone(), Some(&ingest)).await, Code::Ok);
    assert_eq!(create(channel.clone(), Some(&root)).await, Code::Ok);
    assert_eq!(
        get(channel.clone(), Some(&ingest)).await,
        Code::PermissionDenied,
        "write and publish do not include read"
    );
    assert_eq!(server.app.counts().trade_records, 2);

    // Health stays open to all.
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "{health:?}");
}

#[tokio::test]
async fn anonymous_reads_can_be_allowed_while_writes_still_need_a_token() {
    let (server, [_, ingest, _], _dir) = server_with_tokens(true).await;
    let channel = server.channel().await;
    assert_eq!(get(channel.clone(), None).await, Code::NotFound);
    assert_eq!(
        get(channel.clone(), Some("tw_forged")).await,
        Code::Unauthenticated,
        "a token that is sent must be valid"
    );
    assert_eq!(create(channel.clone(), None).await, Code::Unauthenticated);
    assert_eq!(create(channel, Some(&ingest)).await, Code::Ok);
}

#[tokio::test]
async fn without_a_tokens_file_every_call_is_served() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    assert_eq!(get(channel.clone(), None).await, Code::NotFound);
    assert_eq!(create(channel, Some("anything")).await, Code::Ok);
}

#[test]
fn token_create_prints_the_token_once_and_a_line_without_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tradewire"))
        .args([
            "token",
            "create",
            "--name",
            "ingest",
            "--scopes",
            "write,publish",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("tw_"))
        .expect("the token");
    let line = text.lines().last().unwrap();
    assert!(line.starts_with("ingest write,publish "), "{line}");
    assert!(!line.contains(token));

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tradewire"))
        .args(["token", "create", "--name", "x", "--scopes", "fly"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[tokio::test]
async fn every_write_is_logged_with_the_token_name_the_method_and_the_id() {
    let dir = TempDir::new("write-log");
    let (token, line) = tradewire::create_token("ingest", &[Scope::Write]).unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{line}\n")).unwrap();
    let mut server = ServerProcess::start(&[
        "--in-memory".as_ref(),
        "--auth-tokens".as_ref(),
        tokens.as_os_str(),
    ]);
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let created = TradeServiceClient::with_interceptor(channel, bearer(&token))
        .create_trade_record(pb::CreateTradeRecordRequest {
            trade_record: Some(record("IRN", "RUS", "8708", 2022, 1)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let id = created.trade_record.unwrap().id;
    let logged = server.wait_for_log("write");
    assert_eq!(logged["fields"]["caller"], "ingest");
    assert_eq!(logged["fields"]["method"], "CreateTradeRecord");
    assert_eq!(logged["fields"]["id"], id.as_str());
}

#[tokio::test]
async fn one_token_cannot_take_every_subscriber_slot_across_connections() {
    let config = Config {
        hub: tradewire::HubConfig {
            max_subscribers_per_token: 2,
            ..tradewire::HubConfig::default()
        },
        ..Config::default()
    };
    let (server, [reader, _, root], _dir) = server_with_tokens_and(false, config).await;
    let subscribe = |token: String| {
        let addr = server.addr;
        async move {
            let channel = Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            tradewire::pb::export_report_service_client::ExportReportServiceClient::with_interceptor(
                channel,
                bearer(&token),
            )
            .subscribe_export_reports(pb::SubscribeExportReportsRequest::default())
            .await
        }
    };
    // Each on its own connection: the per-connection share does not bind.
    let _first = subscribe(reader.clone()).await.unwrap();
    let _second = subscribe(reader.clone()).await.unwrap();
    let third = subscribe(reader).await.unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert!(third.message().contains("token \"reader\""), "{third:?}");
    subscribe(root)
        .await
        .expect("another token has its own share");
}
