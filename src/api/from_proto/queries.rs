//! Reads: ids of Get and Delete requests, filters, list requests with their
//! page tokens, and subscription requests.

use std::str::FromStr;
use std::time::Duration;

use ulid::Ulid;

use super::announcements::announcement_kind;
use super::scalars::{country, date_range, heartbeat, id, page_size};
use super::{MAX_NAME_LEN, MAX_TEXT_FILTER_LEN, Violations, join};
use crate::api::page_token::PageCursor;
use crate::domain::summary::{BreakdownBy, BreakdownQuery, Buckets, Granularity, SummaryQuery};
use crate::domain::{AnnouncementFilter, Calendar, HsPrefix, TradeFilter};
use crate::error::Result;
use crate::hub::StartPosition;
use crate::pb;

/// The id of a Get or Delete request.
pub(crate) fn id_of(request: &impl IdRequest) -> Result<Ulid> {
    id("id", request.id())
}

/// A request whose one field is the id of what it reads or deletes.
pub(crate) trait IdRequest {
    /// The raw id.
    fn id(&self) -> &str;
}

macro_rules! id_requests {
    ($($message:ident),*) => {$(
        impl IdRequest for pb::$message {
            fn id(&self) -> &str {
                let pb::$message { id } = self;
                id
            }
        }
    )*};
}

id_requests!(
    GetTradeRecordRequest,
    DeleteTradeRecordRequest,
    GetAnnouncementRequest,
    DeleteAnnouncementRequest,
    GetExportReportRequest,
    ListTradeRecordRevisionsRequest
);

pub(crate) fn trade_filter(
    v: &mut Violations,
    path: &str,
    value: Option<&pb::TradeFilter>,
) -> TradeFilter {
    let Some(pb::TradeFilter {
        exporter,
        importer,
        hs_prefix,
        period_overlaps,
    }) = value
    else {
        return TradeFilter::default();
    };
    TradeFilter {
        exporter: country(v, &join(path, "exporter"), exporter, false),
        importer: country(v, &join(path, "importer"), importer, false),
        hs_prefix: if hs_prefix.is_empty() {
            None
        } else {
            v.ok(&join(path, "hs_prefix"), HsPrefix::parse(hs_prefix))
        },
        period_overlaps: period_overlaps
            .as_ref()
            .and_then(|r| date_range(v, &join(path, "period_overlaps"), r)),
    }
}

pub(crate) fn announcement_filter(
    v: &mut Violations,
    path: &str,
    value: Option<&pb::AnnouncementFilter>,
) -> AnnouncementFilter {
    let Some(pb::AnnouncementFilter {
        kind,
        country,
        organization,
        person,
        text,
        announced_within,
    }) = value
    else {
        return AnnouncementFilter::default();
    };
    let lowered = |v: &mut Violations, field: &str, value: &str, max: usize| {
        (!value.is_empty()).then(|| v.text(&join(path, field), value, max, false).to_lowercase())
    };
    AnnouncementFilter {
        kind: announcement_kind(v, &join(path, "kind"), *kind, false),
        country: self::country(v, &join(path, "country"), country, false),
        organization: lowered(v, "organization", organization, MAX_NAME_LEN),
        person: lowered(v, "person", person, MAX_NAME_LEN),
        text: lowered(v, "text", text, MAX_TEXT_FILTER_LEN),
        announced_within: announced_within
            .as_ref()
            .and_then(|r| date_range(v, &join(path, "announced_within"), r)),
    }
}

/// A validated list request: what to match, how many, and where to
/// continue (`after`, from the page token, tied to the filter by `cursor`).
#[derive(Debug)]
pub(crate) struct ListQuery<F, K> {
    pub(crate) filter: F,
    pub(crate) limit: usize,
    pub(crate) after: Option<K>,
    pub(crate) cursor: PageCursor,
}

type FilterOf<P, F> = fn(&mut Violations, &str, Option<&P>) -> F;

/// A list request's fields: page size, page token and filter.
pub(crate) trait ListRequest {
    /// The request's filter message.
    type Filter: prost::Message + Default;
    /// The fields, destructured.
    fn parts(self) -> (i32, String, Option<Self::Filter>);
}

/// A subscription request's fields: filter, start and heartbeat interval.
pub(crate) trait SubscribeRequest {
    /// The request's filter message.
    type Filter;
    /// The fields, destructured; the start as the sequence to resume after.
    fn parts(
        &self,
    ) -> (
        Option<&Self::Filter>,
        Option<u64>,
        Option<&prost_types::Duration>,
    );
}

// Each request is destructured without `..`: a new field fails to compile.
macro_rules! list_requests {
    ($($request:ident => $filter:ident),*) => {$(
        impl ListRequest for pb::$request {
            type Filter = pb::$filter;
            fn parts(self) -> (i32, String, Option<pb::$filter>) {
                let pb::$request {
                    page_size,
                    page_token,
                    filter,
                } = self;
                (page_size, page_token, filter)
            }
        }
    )*};
}

list_requests!(
    ListTradeRecordsRequest => TradeFilter,
    ListExportReportsRequest => TradeFilter,
    ListAnnouncementsRequest => AnnouncementFilter
);

macro_rules! subscribe_requests {
    ($($request:ident, $start:path => $filter:ident),*) => {$(
        impl SubscribeRequest for pb::$request {
            type Filter = pb::$filter;
            fn parts(&self) -> (Option<&pb::$filter>, Option<u64>, Option<&prost_types::Duration>) {
                use $start as Start;
                let pb::$request {
                    filter,
                    start,
                    heartbeat_interval,
                } = self;
                let after = match start {
                    Some(Start::AfterSequence(n)) => Some(*n),
                    Some(Start::FromNow(pb::FromNow {})) | None => None,
                };
                (filter.as_ref(), after, heartbeat_interval.as_ref())
            }
        }
    )*};
}

subscribe_requests!(
    SubscribeExportReportsRequest, pb::subscribe_export_reports_request::Start => TradeFilter,
    WatchAnnouncementsRequest, pb::watch_announcements_request::Start => AnnouncementFilter
);

/// A list request, validated with `convert` for its filter.
pub(crate) fn list<R, F, K>(request: R, convert: FilterOf<R::Filter, F>) -> Result<ListQuery<F, K>>
where
    R: ListRequest,
    K: FromStr,
{
    let (page_size, page_token, filter) = request.parts();
    let limit = self::page_size(page_size)?;
    let mut v = Violations::default();
    let converted = convert(&mut v, "filter", filter.as_ref());
    let converted = v.finish(Some(converted))?;
    let (cursor, after) = PageCursor::read(&page_token, &filter.unwrap_or_default())?;
    Ok(ListQuery {
        filter: converted,
        limit,
        after,
        cursor,
    })
}

/// A validated subscription request.
#[derive(Debug)]
pub(crate) struct SubscriptionRequest<F> {
    pub(crate) filter: F,
    pub(crate) start: StartPosition,
    /// `None` takes the server's default interval.
    pub(crate) heartbeat: Option<Duration>,
}

/// A subscription request, validated with `convert` for its filter.
pub(crate) fn subscription<R, F>(
    request: &R,
    convert: FilterOf<R::Filter, F>,
) -> Result<SubscriptionRequest<F>>
where
    R: SubscribeRequest,
{
    let (filter, after_sequence, heartbeat_interval) = request.parts();
    let mut v = Violations::default();
    let filter = convert(&mut v, "filter", filter);
    let heartbeat = heartbeat(&mut v, "heartbeat_interval", heartbeat_interval);
    Ok(SubscriptionRequest {
        filter: v.finish(Some(filter))?,
        start: after_sequence.map_or(StartPosition::FromNow, StartPosition::AfterSequence),
        heartbeat,
    })
}

/// The currency a summary or breakdown counts only, if named.
fn currency_filter(v: &mut Violations, code: &str) -> Option<iso_currency::Currency> {
    if code.is_empty() {
        return None;
    }
    v.ok("currency_code", crate::domain::money::parse_currency(code))
}

/// Most years a summary spans.
const MAX_SUMMARY_YEARS: i32 = 50;

/// A SummarizeTrade request as a query, and its buckets resolved to
/// periods (the year before the range included).
pub(crate) fn summary_query(
    request: &pb::SummarizeTradeRequest,
) -> Result<(SummaryQuery, Buckets)> {
    let pb::SummarizeTradeRequest {
        filter,
        calendar,
        granularity,
        first_year,
        last_year,
        currency_code,
    } = request;
    let mut v = Violations::default();
    let filter = trade_filter(&mut v, "filter", filter.as_ref());
    let calendar = match pb::Calendar::try_from(*calendar) {
        Ok(pb::Calendar::Unspecified | pb::Calendar::Gregorian) => Some(Calendar::Gregorian),
        Ok(pb::Calendar::SolarHijri) => Some(Calendar::SolarHijri),
        Err(_) => {
            v.add("calendar", format!("{calendar} is not a Calendar"));
            None
        }
    };
    let granularity = match pb::Granularity::try_from(*granularity) {
        Ok(pb::Granularity::Year) => Some(Granularity::Year),
        Ok(pb::Granularity::Quarter) => Some(Granularity::Quarter),
        Ok(pb::Granularity::Month) => Some(Granularity::Month),
        Ok(pb::Granularity::Unspecified) => {
            v.add(
                "granularity",
                "is required: GRANULARITY_YEAR, GRANULARITY_QUARTER or GRANULARITY_MONTH",
            );
            None
        }
        Err(_) => {
            v.add("granularity", format!("{granularity} is not a Granularity"));
            None
        }
    };
    if last_year < first_year {
        v.add(
            "last_year",
            format!("{last_year} is before first_year {first_year}"),
        );
    } else if last_year - first_year > MAX_SUMMARY_YEARS {
        v.add(
            "last_year",
            format!(
                "{last_year} is more than {MAX_SUMMARY_YEARS} years after first_year {first_year}"
            ),
        );
    }
    let currency = currency_filter(&mut v, currency_code);
    let query = match (calendar, granularity) {
        (Some(calendar), Some(granularity)) => Some(SummaryQuery {
            filter,
            calendar,
            granularity,
            first_year: *first_year,
            last_year: *last_year,
            currency,
        }),
        _ => None,
    };
    let buckets = query.as_ref().and_then(|q| match q.buckets() {
        Ok(buckets) => Some(buckets),
        Err(
            crate::domain::period::PeriodError::Year(e)
            | crate::domain::period::PeriodError::Quarter(e)
            | crate::domain::period::PeriodError::Month(e),
        ) => {
            v.add(
                "first_year",
                format!("the range {first_year}..={last_year}: {e}"),
            );
            None
        }
    });
    v.finish(query.zip(buckets))
}

/// Most partners or HS codes a breakdown lists.
const MAX_BREAKDOWN_TOP: i32 = 100;

/// A BreakdownTrade request as a query.
pub(crate) fn breakdown_query(request: &pb::BreakdownTradeRequest) -> Result<BreakdownQuery> {
    let pb::BreakdownTradeRequest {
        exporter,
        importer,
        period,
        dimension,
        hs_digits,
        top,
        currency_code,
    } = request;
    let mut v = Violations::default();
    let exporter = country(&mut v, "exporter", exporter, false);
    let importer = country(&mut v, "importer", importer, false);
    let period = match period {
        Some(p) => super::scalars::period(&mut v, "period", p),
        None => {
            v.add("period", "is required");
            None
        }
    };
    let by = match pb::BreakdownDimension::try_from(*dimension) {
        Ok(pb::BreakdownDimension::Partner) => {
            if exporter.is_some() == importer.is_some() {
                v.add(
                    "exporter",
                    "set exactly one of exporter and importer to rank the other side's partners",
                );
            }
            Some(BreakdownBy::Partner)
        }
        Ok(pb::BreakdownDimension::HsCode) => match hs_digits {
            2 | 4 | 6 => Some(BreakdownBy::HsCode(*hs_digits as usize)),
            other => {
                v.add(
                    "hs_digits",
                    format!("{other} is not an HS level: 2, 4 or 6"),
                );
                None
            }
        },
        Ok(pb::BreakdownDimension::Unspecified) => {
            v.add(
                "dimension",
                "is required: BREAKDOWN_DIMENSION_PARTNER or BREAKDOWN_DIMENSION_HS_CODE",
            );
            None
        }
        Err(_) => {
            v.add(
                "dimension",
                format!("{dimension} is not a BreakdownDimension"),
            );
            None
        }
    };
    let top = match top {
        0 => 10,
        1..=MAX_BREAKDOWN_TOP => *top as usize,
        other => {
            v.add(
                "top",
                format!("{other} is outside 1..={MAX_BREAKDOWN_TOP} (0 means 10)"),
            );
            0
        }
    };
    let currency = currency_filter(&mut v, currency_code);
    let query = match (period, by) {
        (Some(period), Some(by)) => Some(BreakdownQuery {
            filter: TradeFilter {
                exporter,
                importer,
                hs_prefix: None,
                period_overlaps: Some(period.range),
            },
            period,
            by,
            top,
            currency,
        }),
        _ => None,
    };
    v.finish(query)
}
