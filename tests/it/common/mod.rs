//! Test harness: starts a real tradewire server on 127.0.0.1:0 and hands
//! out tonic clients connected to it over TCP.
#![allow(dead_code)]

pub(crate) mod binary;
pub(crate) mod nats;
pub(crate) mod pki;
pub(crate) mod raw_h2;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use tradewire::pb;
use tradewire::pb::announcement_service_client::AnnouncementServiceClient;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::trade_service_client::TradeServiceClient;
use tradewire::{App, Config};

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub app: App,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tradewire::ServeError>>>,
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        Self::with_config(Config::default()).await
    }

    pub(crate) async fn with_config(config: Config) -> TestServer {
        Self::with_config_at(config, "127.0.0.1:0".parse().expect("loopback")).await
    }

    /// A server on `addr`: a restarted server on its predecessor's port.
    pub(crate) async fn with_config_at(config: Config, addr: SocketAddr) -> TestServer {
        let listener = TcpListener::bind(addr).await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let app = App::open(config).await.expect("open app");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            app,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to test server")
    }

    /// A connection with small HTTP/2 windows: a client that stops reading
    /// stalls the server's side of its streams after a few KiB, as a slow
    /// consumer on a real network would.
    pub(crate) async fn narrow_channel(&self, window: u32) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .initial_stream_window_size(window)
            .initial_connection_window_size(window)
            .connect()
            .await
            .expect("connect to test server")
    }

    pub(crate) async fn trade(&self) -> TradeServiceClient<Channel> {
        TradeServiceClient::new(self.channel().await)
    }

    pub(crate) async fn reports(&self) -> ExportReportServiceClient<Channel> {
        ExportReportServiceClient::new(self.channel().await)
    }

    pub(crate) async fn announcements(&self) -> AnnouncementServiceClient<Channel> {
        AnnouncementServiceClient::new(self.channel().await)
    }

    pub(crate) fn subscribers(&self) -> watch::Receiver<usize> {
        self.app.subscriber_count()
    }

    /// Signals shutdown and waits for the server task to finish.
    pub(crate) async fn shutdown(mut self) -> Result<(), tradewire::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("server task panicked"),
            None => Ok(()),
        }
    }

    /// Signals shutdown without waiting.
    pub(crate) fn begin_shutdown(&mut self) -> JoinHandle<Result<(), tradewire::ServeError>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("server task")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Waits on a watch until `ready` holds, failing after `limit`.
pub(crate) async fn wait_for<T>(
    rx: &mut watch::Receiver<T>,
    limit: Duration,
    ready: impl FnMut(&T) -> bool,
) {
    tokio::time::timeout(limit, rx.wait_for(ready))
        .await
        .expect("condition not reached in time")
        .expect("watch closed");
}

/// The field paths named in an INVALID_ARGUMENT's BadRequest details.
pub(crate) fn violated_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Asserts that an INVALID_ARGUMENT names `field` among its violations.
pub(crate) fn assert_names_field(status: &Status, field: &str) {
    let fields = violated_fields(status);
    assert!(
        fields.iter().any(|f| f == field),
        "expected {field} in {fields:?}"
    );
}

pub(crate) fn usd(units: i64, bound: pb::Bound) -> pb::BoundedMoney {
    pb::BoundedMoney {
        value: Some(pb::Money {
            currency_code: "USD".into(),
            units,
            nanos: 0,
        }),
        bound: bound.into(),
    }
}

pub(crate) fn year(calendar: pb::Calendar, year: i32) -> pb::Period {
    pb::Period {
        spec: Some(pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
            calendar: calendar.into(),
            year,
            part: None,
        })),
        ..Default::default()
    }
}

pub(crate) fn quarter(calendar: pb::Calendar, year: i32, quarter: i32) -> pb::Period {
    pb::Period {
        spec: Some(pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
            calendar: calendar.into(),
            year,
            part: Some(pb::calendar_period::Part::Quarter(quarter)),
        })),
        ..Default::default()
    }
}

pub(crate) fn date(year: i32, month: i32, day: i32) -> pb::Date {
    pb::Date { year, month, day }
}

pub(crate) fn source(organization: &str) -> pb::Source {
    pb::Source {
        organization: organization.into(),
        outlet: "IRNA".into(),
        ..Default::default()
    }
}

pub(crate) fn record(
    exporter: &str,
    importer: &str,
    hs_code: &str,
    year_: i32,
    units: i64,
) -> pb::TradeRecord {
    pb::TradeRecord {
        exporter: exporter.into(),
        importer: importer.into(),
        hs_code: hs_code.into(),
        commodity: "test goods".into(),
        period: Some(year(pb::Calendar::Gregorian, year_)),
        value: Some(usd(units, pb::Bound::Exact)),
        source: Some(source("Test Statistics Office")),
        ..Default::default()
    }
}

pub(crate) fn report(
    exporter: &str,
    importer: &str,
    hs_code: &str,
    headline: &str,
) -> pb::ExportReport {
    pb::ExportReport {
        exporter: exporter.into(),
        importer: importer.into(),
        hs_code: hs_code.into(),
        headline: headline.into(),
        source: Some(source("Test Statistics Office")),
        period: Some(quarter(pb::Calendar::Gregorian, 2024, 2)),
        ..Default::default()
    }
}

/// A report of `year_` against `year_ - 1`: its baseline figure has the key
/// of `record("IRN", "RUS", "8708", year_ - 1, ..)`.
pub(crate) fn growth(year_: i32) -> pb::ExportReport {
    pb::ExportReport {
        period: Some(year(pb::Calendar::Gregorian, year_)),
        value: Some(usd(66_000_000, pb::Bound::AtLeast)),
        baseline_period: Some(year(pb::Calendar::Gregorian, year_ - 1)),
        baseline_value: Some(usd(13_000_000, pb::Bound::Exact)),
        ..report("IRN", "RUS", "8708", &format!("growth {year_}"))
    }
}

pub(crate) fn create(record: pb::TradeRecord) -> pb::CreateTradeRecordRequest {
    pb::CreateTradeRecordRequest {
        trade_record: Some(record),
        request_id: String::new(),
    }
}

/// Creates `record` and returns it as stored.
pub(crate) async fn stored(
    client: &mut TradeServiceClient<Channel>,
    record: pb::TradeRecord,
) -> pb::TradeRecord {
    client
        .create_trade_record(create(record))
        .await
        .expect("create a trade record")
        .into_inner()
        .trade_record
        .expect("the stored record")
}

pub(crate) fn publish(report: pb::ExportReport) -> pb::PublishExportReportRequest {
    pb::PublishExportReportRequest {
        export_report: Some(report),
        request_id: String::new(),
    }
}

/// A validation case: the field that must be named, and how to break a
/// valid message so that it is.
pub(crate) type Case<T> = (&'static str, Box<dyn Fn(&mut T)>);

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tradewire-{tag}-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server config whose store lives in `dir`.
pub(crate) fn durable(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.store.durable = Some(tradewire::DurableConfig::new(dir));
    config
}

/// The log segments in a data directory, oldest first.
pub(crate) fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("read data dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    found.sort();
    found
}
