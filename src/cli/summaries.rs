//! `tradewire summary` and `tradewire breakdown`: their flags and the
//! calls they make.

use clap::Args;
use tradewire::pb;

use super::{Connection, TradeFilterArgs, human, json, print, print_all, status};

/// The calendar of a summary or a period.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CalendarArg {
    /// January to December.
    Gregorian,
    /// The Iranian (Solar Hijri) calendar: years from Nowruz (March 20/21).
    SolarHijri,
}

impl CalendarArg {
    fn proto(self) -> pb::Calendar {
        match self {
            CalendarArg::Gregorian => pb::Calendar::Gregorian,
            CalendarArg::SolarHijri => pb::Calendar::SolarHijri,
        }
    }
}

/// The size of a summary's buckets.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum GranularityArg {
    Year,
    Quarter,
    Month,
}

/// `tradewire summary`: SummarizeTrade.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  tradewire summary --exporter IRN --importer RUS --hs-prefix 8708 --from 2022 --to 2023\n  tradewire summary --exporter IRN --importer RUS --calendar solar-hijri --by quarter --from 1402 --to 1403"
)]
pub(crate) struct SummaryArgs {
    #[command(flatten)]
    filter: TradeFilterArgs,
    /// The calendar of the buckets.
    #[arg(long, value_enum, default_value = "gregorian")]
    calendar: CalendarArg,
    /// The size of the buckets.
    #[arg(long, value_enum, default_value = "year")]
    by: GranularityArg,
    /// The first year, in that calendar.
    #[arg(long)]
    from: i32,
    /// The last year, inclusive.
    #[arg(long)]
    to: i32,
    /// Count only this currency (ISO 4217).
    #[arg(long)]
    currency: Option<String>,
}

/// What `tradewire breakdown` ranks.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum DimensionArg {
    /// The partners of the one country given.
    Partner,
    /// HS codes at --hs-digits.
    HsCode,
}

/// `tradewire breakdown`: BreakdownTrade over one calendar year.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  tradewire breakdown --exporter IRN --year 2023 --by partner\n  tradewire breakdown --importer RUS --year 1402 --calendar solar-hijri --by hs-code --hs-digits 4"
)]
pub(crate) struct BreakdownArgs {
    /// Exporter, ISO 3166-1 alpha-3.
    #[arg(long)]
    exporter: Option<String>,
    /// Importer, ISO 3166-1 alpha-3.
    #[arg(long)]
    importer: Option<String>,
    /// The year, in --calendar.
    #[arg(long)]
    year: i32,
    /// The calendar of --year.
    #[arg(long, value_enum, default_value = "gregorian")]
    calendar: CalendarArg,
    /// What to rank.
    #[arg(long, value_enum, default_value = "partner")]
    by: DimensionArg,
    /// With --by hs-code: 2, 4 or 6.
    #[arg(long, default_value_t = 4)]
    hs_digits: i32,
    /// How many to list; the rest is summed as "others".
    #[arg(long, default_value_t = 10)]
    top: i32,
    /// Count only this currency (ISO 4217).
    #[arg(long)]
    currency: Option<String>,
}

pub(crate) async fn summary(conn: &Connection, args: SummaryArgs) -> Result<(), String> {
    let client = conn.client().await?;
    let granularity = match args.by {
        GranularityArg::Year => pb::Granularity::Year,
        GranularityArg::Quarter => pb::Granularity::Quarter,
        GranularityArg::Month => pb::Granularity::Month,
    };
    let summary = client
        .trade()
        .summarize_trade(pb::SummarizeTradeRequest {
            filter: args.filter.filter(),
            calendar: args.calendar.proto().into(),
            granularity: granularity.into(),
            first_year: args.from,
            last_year: args.to,
            currency_code: args.currency.unwrap_or_default(),
        })
        .await
        .map_err(status)?
        .into_inner();
    print_all(
        conn.json,
        &summary.buckets,
        "TradeSummaryBucket",
        human::summary_table,
    )
}

pub(crate) async fn breakdown(conn: &Connection, args: BreakdownArgs) -> Result<(), String> {
    let client = conn.client().await?;
    let breakdown = client
        .trade()
        .breakdown_trade(pb::BreakdownTradeRequest {
            exporter: args.exporter.unwrap_or_default(),
            importer: args.importer.unwrap_or_default(),
            period: Some(pb::Period {
                spec: Some(pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
                    calendar: args.calendar.proto().into(),
                    year: args.year,
                    part: None,
                })),
                ..Default::default()
            }),
            dimension: match args.by {
                DimensionArg::Partner => pb::BreakdownDimension::Partner,
                DimensionArg::HsCode => pb::BreakdownDimension::HsCode,
            }
            .into(),
            hs_digits: args.hs_digits,
            top: args.top,
            currency_code: args.currency.unwrap_or_default(),
        })
        .await
        .map_err(status)?
        .into_inner();
    if conn.json {
        print(json::to_line(&breakdown, "BreakdownTradeResponse")?)
    } else {
        print(human::breakdown_table(&breakdown))
    }
}
