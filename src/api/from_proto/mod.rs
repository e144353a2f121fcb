//! Wire to domain: every request field is validated here, and nowhere else.
//!
//! Each request message is destructured without `..`, so a field added to
//! the proto fails to compile here until it is handled (or marked as
//! output-only). Conversions record each problem in `Violations` with the
//! path of its field ("trade_record.period.calendar_period.quarter") and
//! keep going, so one `INVALID_ARGUMENT` lists every violation of a request.
//!
//! By message family: `scalars` (ids, dates, money, periods, sources),
//! `records`, `announcements`, `reports`, and `queries` (filters, lists,
//! subscriptions).

mod announcements;
mod queries;
mod records;
mod reports;
mod scalars;

use crate::error::{Error, FieldViolation, Result};
use crate::store::RequestKey;

pub(crate) use announcements::create_announcement;
pub(crate) use queries::{
    announcement_filter, breakdown_query, id_of, list, subscription, summary_query, trade_filter,
};
#[cfg(feature = "testing")]
pub(crate) use records::trade_record;
pub(crate) use records::{batch_create_trade_records, create_trade_record, update_trade_record};
pub(crate) use reports::publish_export_report;

/// Caps on request sizes, so one request cannot take unbounded memory.
pub(crate) const MAX_NAME_LEN: usize = 200;
pub(crate) const MAX_HEADLINE_LEN: usize = 500;
pub(crate) const MAX_BODY_LEN: usize = 20_000;
pub(crate) const MAX_QUOTE_LEN: usize = 5_000;
pub(crate) const MAX_URL_LEN: usize = 2_000;
pub(crate) const MAX_LIST_LEN: usize = 50;
pub(crate) const MAX_RELATED_IDS: usize = 100;
pub(crate) const MAX_BATCH: usize = 1_000;
pub(crate) const MAX_REQUEST_ID_LEN: usize = 128;
pub(crate) const MAX_TEXT_FILTER_LEN: usize = 200;
pub(crate) const DEFAULT_PAGE_SIZE: usize = 50;
pub(crate) const MAX_PAGE_SIZE: usize = 1_000;

/// A validated write and the idempotency key it came with.
#[derive(Debug)]
pub(crate) struct Write<T> {
    pub(crate) value: T,
    pub(crate) request: Option<RequestKey>,
}

/// Most violations one answer lists; the rest are only counted, so that an
/// error stays small whatever the request (gRPC clients refuse trailers
/// over 8 KiB).
pub(crate) const MAX_LISTED_VIOLATIONS: usize = 20;

/// The field violations found while a request is converted.
#[derive(Debug, Default)]
pub(crate) struct Violations {
    found: Vec<FieldViolation>,
    /// Violations found past `MAX_LISTED_VIOLATIONS`.
    unlisted: usize,
}

/// How a text field may break lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// Identifiers and names: no control characters at all.
    Line,
    /// Long text (bodies, quotes): tab, line feed and carriage return too.
    Long,
}

impl Violations {
    /// Records that `field` is invalid, and why.
    pub(crate) fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.found.len() >= MAX_LISTED_VIOLATIONS {
            self.unlisted += 1;
            return;
        }
        self.found.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    fn ok<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.add(field, e)).ok()
    }

    fn required<'a, T>(&mut self, field: &str, value: Option<&'a T>) -> Option<&'a T> {
        if value.is_none() {
            self.add(field, "is required");
        }
        value
    }

    /// A one-line text field: a name, a headline, a code.
    fn text(&mut self, field: &str, value: &str, max: usize, required: bool) -> String {
        self.checked_text(field, value, max, required, Text::Line)
    }

    /// A text field that may span lines: a body, a quote.
    fn long_text(&mut self, field: &str, value: &str, max: usize) -> String {
        self.checked_text(field, value, max, false, Text::Long)
    }

    fn checked_text(
        &mut self,
        field: &str,
        value: &str,
        max: usize,
        required: bool,
        kind: Text,
    ) -> String {
        if required && value.trim().is_empty() {
            self.add(field, "is required");
        }
        let chars = value.chars().count();
        if chars > max {
            self.add(
                field,
                format!("is {chars} characters long; the limit is {max}"),
            );
        } else if let Some((at, c)) = value.chars().enumerate().find(|(_, c)| {
            c.is_control() && !(kind == Text::Long && matches!(c, '\t' | '\n' | '\r'))
        }) {
            self.add(
                field,
                format!(
                    "must not contain control characters; U+{:04X} at character {at}",
                    u32::from(c)
                ),
            );
        }
        value.to_owned()
    }

    /// Converts each element of the repeated `field` at `path` once the
    /// field is within its limit of `max` entries; past it, the field is
    /// named once and no element is checked, so a huge list costs one
    /// violation, not one per element.
    fn each<T, U>(
        &mut self,
        (path, field): (&str, &str),
        items: &[T],
        max: usize,
        mut convert: impl FnMut(&mut Self, &str, &T) -> Option<U>,
    ) -> Vec<U> {
        if items.len() > max {
            self.add(
                join(path, field),
                format!("has {} entries; the limit is {max}", items.len()),
            );
            return Vec::new();
        }
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| convert(self, &element(path, field, i), item))
            .collect()
    }

    /// Takes in the violations of an error that names its fields.
    fn absorb(&mut self, error: Error) {
        match error {
            Error::InvalidArgument(violations) => {
                for violation in violations {
                    self.add(violation.field, violation.description);
                }
            }
            other => self.add("", other.to_string()),
        }
    }

    /// The value if no violation was recorded, else `INVALID_ARGUMENT`
    /// listing at most `MAX_LISTED_VIOLATIONS`, then how many more.
    pub(crate) fn finish<T>(mut self, value: Option<T>) -> Result<T> {
        if self.unlisted > 0 {
            self.found.push(FieldViolation {
                field: String::new(),
                description: format!("{} more violations are not listed", self.unlisted),
            });
        }
        match value {
            Some(value) if self.found.is_empty() => Ok(value),
            _ if !self.found.is_empty() => Err(Error::InvalidArgument(self.found)),
            _ => Err(Error::Internal(
                "conversion failed without a violation".into(),
            )),
        }
    }
}

/// The path of `field` inside the message at `path`.
fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// The path of element `index` of the repeated `field` at `path`.
fn element(path: &str, field: &str, index: usize) -> String {
    format!("{}[{index}]", join(path, field))
}

/// Takes the request id out of a request and fingerprints the rest, so a
/// retry matches whatever its request id was.
fn request_key<M: prost::Message>(
    violations: &mut Violations,
    message: &mut M,
    take: impl FnOnce(&mut M) -> String,
) -> Option<RequestKey> {
    let raw = take(message);
    let request_id = scalars::request_id(violations, "request_id", &raw)?;
    Some(RequestKey {
        request_id,
        fingerprint: super::fingerprint(message),
    })
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::pb;

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,8}",
            "[A-Z]{3}",
            "[0-9]{2,6}",
            proptest::collection::vec(any::<char>(), 0..400)
                .prop_map(|chars| chars.into_iter().collect()),
        ]
    }

    proptest! {
        /// Whatever the strings, a trade record converts or is refused
        /// with a small error: at most 20 violations and a count, each
        /// naming a field of the request, each description short.
        #[test]
        fn validation_never_panics_and_errors_stay_small(
            exporter in any_text(),
            importer in any_text(),
            hs_code in any_text(),
            commodity in any_text(),
            currency in any_text(),
            organization in any_text(),
            url in any_text(),
            units in any::<i64>(),
            nanos in any::<i32>(),
            year in any::<i32>(),
        ) {
            let record = pb::TradeRecord {
                exporter,
                importer,
                hs_code,
                commodity,
                period: Some(pb::Period {
                    spec: Some(pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
                        calendar: pb::Calendar::SolarHijri.into(),
                        year,
                        part: None,
                    })),
                    ..Default::default()
                }),
                value: Some(pb::BoundedMoney {
                    value: Some(pb::Money { currency_code: currency, units, nanos }),
                    bound: 0,
                }),
                source: Some(pb::Source { organization, url, ..Default::default() }),
                ..Default::default()
            };
            let request = pb::CreateTradeRecordRequest {
                trade_record: Some(record),
                request_id: String::new(),
            };
            match create_trade_record(request) {
                Ok(write) => prop_assert_eq!(write.value.len(), 1),
                Err(Error::InvalidArgument(violations)) => {
                    prop_assert!(!violations.is_empty());
                    prop_assert!(violations.len() <= MAX_LISTED_VIOLATIONS + 1);
                    for v in &violations {
                        prop_assert!(v.field.starts_with("trade_record"), "{}", v.field);
                        prop_assert!(v.description.len() < 300, "{}", v.description);
                    }
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// A list of any length costs one violation when over its limit,
        /// never one per element.
        #[test]
        fn long_lists_are_one_violation(n in 0usize..2_000) {
            let mut v = Violations::default();
            let items = vec![String::from("??"); n];
            let _ = v.each(("a", "countries"), &items, MAX_LIST_LEN, |v, field, _| {
                v.add(field, "bad");
                None::<()>
            });
            let found = v.finish(None::<()>);
            let count = match found {
                Err(Error::InvalidArgument(violations)) => violations.len(),
                _ => 0,
            };
            let expected = match n {
                0 => 0,
                n if n > MAX_LIST_LEN => 1,
                n if n > MAX_LISTED_VIOLATIONS => MAX_LISTED_VIOLATIONS + 1,
                n => n,
            };
            prop_assert_eq!(count, expected);
        }
    }
}
