//! The command line for people and scripts, over `tradewire::client`:
//! `records`, `reports`, `announcements`, `summary` and `breakdown`, each
//! with tables for people and `--json` (one object per line) for scripts,
//! and `completions`.

mod bulk;
mod human;
mod json;
mod summaries;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tradewire::client::{Client, ClientOptions, ClientTls, SubscriptionError};
use tradewire::pb;

pub(crate) use summaries::{BreakdownArgs, SummaryArgs, breakdown, summary};

/// Where the server is, and how output is written.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// The server's URL (https:// with --ca).
    #[arg(
        long,
        env = "TRADEWIRE_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    server: String,
    /// A bearer token (`tradewire token create` makes one).
    #[arg(long, env = "TRADEWIRE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// PEM of the CA that signed the server's certificate.
    #[arg(long, env = "TRADEWIRE_CA", global = true)]
    ca: Option<PathBuf>,
    /// One JSON object per line (the proto3 JSON mapping) instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

impl Connection {
    async fn client(&self) -> Result<Client, String> {
        let tls = match &self.ca {
            Some(path) => Some(ClientTls {
                ca_pem: std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
                ..ClientTls::default()
            }),
            None => None,
        };
        let options = ClientOptions {
            token: self.token.clone(),
            tls,
            ..ClientOptions::default()
        };
        Client::connect_with(&self.server, options)
            .await
            .map_err(|e| format!("{}: {e}", self.server))
    }
}

/// Which trade figures.
#[derive(Debug, Args)]
pub(crate) struct TradeFilterArgs {
    /// Exporter, ISO 3166-1 alpha-3 (IRN).
    #[arg(long)]
    exporter: Option<String>,
    /// Importer, ISO 3166-1 alpha-3 (RUS).
    #[arg(long)]
    importer: Option<String>,
    /// HS code prefix (87, 8708).
    #[arg(long)]
    hs_prefix: Option<String>,
}

impl TradeFilterArgs {
    fn filter(&self) -> Option<pb::TradeFilter> {
        let filter = pb::TradeFilter {
            exporter: self.exporter.clone().unwrap_or_default(),
            importer: self.importer.clone().unwrap_or_default(),
            hs_prefix: self.hs_prefix.clone().unwrap_or_default(),
            period_overlaps: None,
        };
        (filter != pb::TradeFilter::default()).then_some(filter)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum RecordsAction {
    /// List trade records, newest last.
    #[command(
        after_help = "Example:\n  tradewire records list --exporter IRN --importer RUS --hs-prefix 8708"
    )]
    List {
        #[command(flatten)]
        filter: TradeFilterArgs,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one trade record.
    #[command(after_help = "Example:\n  tradewire records get 01JD5V6Q8XKZ3N4M2P7R9S0T1U")]
    Get {
        /// Its id.
        id: String,
    },
    /// Create trade records from a file of JSON lines (one TradeRecord each).
    #[command(
        after_help = "Example:\n  tradewire records create --from records.jsonl\n\nA line: {\"exporter\":\"IRN\",\"importer\":\"RUS\",\"hsCode\":\"8708\",\"commodity\":\"auto parts\",\"period\":{\"calendarPeriod\":{\"calendar\":\"CALENDAR_GREGORIAN\",\"year\":2023}},\"value\":{\"value\":{\"currencyCode\":\"USD\",\"units\":\"66000000\"},\"bound\":\"BOUND_AT_LEAST\"},\"source\":{\"organization\":\"Iran Trade Promotion Organization\"}}"
    )]
    Create {
        /// The file (`-` for standard input).
        #[arg(long)]
        from: PathBuf,
        /// Records per batch call (1 to 1000). Run again after a failure
        /// with the same --batch: each call's request_id comes from its
        /// lines, so the server stores no line twice.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportsAction {
    /// Publish export reports from a file of JSON lines (one ExportReport
    /// each). Safe to run again after a failure: each call's request_id
    /// comes from its line, so no report is published twice.
    #[command(after_help = "Example:\n  tradewire reports publish --from reports.jsonl")]
    Publish {
        /// The file (`-` for standard input).
        #[arg(long)]
        from: PathBuf,
    },
    /// List export reports in sequence order.
    #[command(after_help = "Example:\n  tradewire reports list --exporter IRN")]
    List {
        #[command(flatten)]
        filter: TradeFilterArgs,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Print reports as they are published; goes on across reconnects and
    /// server restarts, each sequence once.
    #[command(after_help = "Example:\n  tradewire reports watch --after 0 --importer RUS")]
    Watch {
        #[command(flatten)]
        filter: TradeFilterArgs,
        /// Start after this sequence (0: every retained report); without
        /// it, from now.
        #[arg(long)]
        after: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AnnouncementsAction {
    /// List announcements in sequence order.
    #[command(after_help = "Example:\n  tradewire announcements list --country RUS")]
    List {
        /// Only this country (ISO 3166-1 alpha-3).
        #[arg(long)]
        country: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Print announcements as they are made, across reconnects.
    #[command(after_help = "Example:\n  tradewire announcements watch --after 0")]
    Watch {
        /// Start after this sequence (0: every retained one); without it,
        /// from now.
        #[arg(long)]
        after: Option<u64>,
    },
}

/// A bar on a terminal; nothing when standard error is piped.
fn progress(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style);
    }
    bar
}

fn status(e: tonic::Status) -> String {
    format!("{:?}: {}", e.code(), e.message())
}

fn print(text: impl std::fmt::Display) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // The reader went away (`| head`): done, as other tools are.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(e.to_string()),
    }
}

/// Up to `limit` items, page after page: `page(size, token)` fetches one
/// page and its next token (empty after the last).
async fn pages<T, F, Fut>(limit: usize, mut page: F) -> Result<Vec<T>, String>
where
    F: FnMut(i32, String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    while all.len() < limit {
        let size = (limit - all.len()).min(1000) as i32;
        let (items, next) = page(size, token).await.map_err(status)?;
        all.extend(items);
        token = next;
        if token.is_empty() {
            break;
        }
    }
    Ok(all)
}

/// `items` as JSON lines (messages of type `name`), or as `table` makes them.
fn print_all<M: prost::Message>(
    json: bool,
    items: &[M],
    name: &str,
    table: impl FnOnce(&[M]) -> comfy_table::Table,
) -> Result<(), String> {
    if json {
        for item in items {
            print(json::to_line(item, name)?)?;
        }
        Ok(())
    } else {
        print(table(items))
    }
}

pub(crate) async fn records(conn: &Connection, action: RecordsAction) -> Result<(), String> {
    let client = conn.client().await?;
    let mut trade = client.trade();
    match action {
        RecordsAction::List { filter, limit } => {
            let all = pages(limit, |page_size, page_token| {
                let mut trade = trade.clone();
                let filter = filter.filter();
                async move {
                    let page = trade
                        .list_trade_records(pb::ListTradeRecordsRequest {
                            page_size,
                            page_token,
                            filter,
                        })
                        .await?
                        .into_inner();
                    Ok((page.trade_records, page.next_page_token))
                }
            })
            .await?;
            print_all(conn.json, &all, "TradeRecord", human::records_table)
        }
        RecordsAction::Get { id } => {
            let record = trade
                .get_trade_record(pb::GetTradeRecordRequest { id })
                .await
                .map_err(status)?
                .into_inner()
                .trade_record
                .ok_or("the answer holds no record")?;
            print_all(conn.json, &[record], "TradeRecord", human::records_table)
        }
        RecordsAction::Create { from, batch } => {
            bulk::create_records(&client, conn.json, &from, batch).await
        }
    }
}

pub(crate) async fn reports(conn: &Connection, action: ReportsAction) -> Result<(), String> {
    let client = conn.client().await?;
    match action {
        ReportsAction::Publish { from } => bulk::publish_reports(&client, conn.json, &from).await,
        ReportsAction::List { filter, limit } => {
            let service = client.reports();
            let all = pages(limit, |page_size, page_token| {
                let mut service = service.clone();
                let filter = filter.filter();
                async move {
                    let page = service
                        .list_export_reports(pb::ListExportReportsRequest {
                            page_size,
                            page_token,
                            filter,
                        })
                        .await?
                        .into_inner();
                    Ok((page.export_reports, page.next_page_token))
                }
            })
            .await?;
            print_all(conn.json, &all, "ExportReport", human::reports_table)
        }
        ReportsAction::Watch { filter, after } => {
            let mut subscription = client.subscribe_reports(filter.filter(), after);
            while let Some(item) = subscription.next().await {
                let report = item.map_err(subscription_error)?;
                if conn.json {
                    print(json::to_line(&report, "ExportReport")?)?;
                } else {
                    print(human::report_line(&report))?;
                }
            }
            Ok(())
        }
    }
}

pub(crate) async fn announcements(
    conn: &Connection,
    action: AnnouncementsAction,
) -> Result<(), String> {
    let client = conn.client().await?;
    match action {
        AnnouncementsAction::List { country, limit } => {
            let service = client.announcements();
            let all = pages(limit, |page_size, page_token| {
                let mut service = service.clone();
                let filter = country.clone().map(|country| pb::AnnouncementFilter {
                    country,
                    ..Default::default()
                });
                async move {
                    let page = service
                        .list_announcements(pb::ListAnnouncementsRequest {
                            page_size,
                            page_token,
                            filter,
                        })
                        .await?
                        .into_inner();
                    Ok((page.announcements, page.next_page_token))
                }
            })
            .await?;
            print_all(conn.json, &all, "Announcement", human::announcements_table)
        }
        AnnouncementsAction::Watch { after } => {
            let mut subscription = client.watch_announcements(None, after);
            while let Some(item) = subscription.next().await {
                let announcement = item.map_err(subscription_error)?;
                if conn.json {
                    print(json::to_line(&announcement, "Announcement")?)?;
                } else {
                    print(human::announcement_line(&announcement))?;
                }
            }
            Ok(())
        }
    }
}

fn subscription_error(error: SubscriptionError) -> String {
    match error {
        SubscriptionError::NotRetained {
            oldest_retained, ..
        } => format!(
            "{error}; run again with --after {} to read what is retained",
            oldest_retained.saturating_sub(1)
        ),
        other => other.to_string(),
    }
}
