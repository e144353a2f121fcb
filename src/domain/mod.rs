//! Domain types of tradewire, independent of the wire format: money,
//! periods and calendars, countries, HS codes, trade records, announcements
//! and export reports, with the rules that make them valid.
//!
//! Constructors here validate their own invariants and return a plain
//! description on failure; `api::from_proto` attaches the field path.

pub(crate) mod announcement;
pub(crate) mod codes;
pub(crate) mod filter;
pub(crate) mod money;
pub(crate) mod period;
pub(crate) mod record;
pub(crate) mod report;
pub(crate) mod summary;

pub(crate) use announcement::{AnnouncedEvent, Announcement, AnnouncementKind, Due, Forecast};
pub(crate) use codes::{CountryCode, HsCode, HsPrefix};
pub(crate) use filter::{AnnouncementFilter, TradeFilter};
pub(crate) use money::{Bound, BoundedMoney, Money, Quantity};
pub(crate) use period::{Calendar, CalendarPart, DateRange, Period, PeriodSpec};
pub(crate) use record::{Person, RecordPatch, Source, TradeRecord};
pub(crate) use report::{Change, ExportReport};

/// Most characters of a client's input that an error message quotes.
const MAX_QUOTED_CHARS: usize = 32;

/// `value` quoted for an error message, cut to a short prefix (with its
/// full length) so that an answer is never larger than the question.
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// Anything carried on a numbered stream.
pub(crate) trait Sequenced {
    fn sequence(&self) -> u64;
}

/// Anything with the trade keys that `TradeFilter` matches on.
pub(crate) trait TradeKeyed {
    fn exporter(&self) -> CountryCode;
    fn importer(&self) -> CountryCode;
    fn hs_code(&self) -> &HsCode;
    fn period(&self) -> &Period;
}
