//! Trade summaries: buckets of a calendar, the counting rule that never adds
//! a figure twice, the bounds of sums, and growth (computed, or stated by
//! an export report). The rule is written out on the proto's
//! `SummarizeTradeRequest`; each clause has a test below.

use std::collections::{BTreeMap, BTreeSet};

use iso_currency::Currency;
use ulid::Ulid;

use super::{
    Bound, BoundedMoney, Calendar, CalendarPart, Change, CountryCode, DateRange, ExportReport,
    HsCode, Money, Period, TradeFilter, TradeRecord,
};
use crate::domain::period::PeriodError;

/// The size of a summary's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Granularity {
    Year,
    Quarter,
    Month,
}

impl Granularity {
    fn parts(self) -> Vec<CalendarPart> {
        match self {
            Granularity::Year => vec![CalendarPart::Year],
            Granularity::Quarter => (1..=4).map(CalendarPart::Quarter).collect(),
            Granularity::Month => (1..=12).map(CalendarPart::Month).collect(),
        }
    }
}

/// What to summarize.
#[derive(Debug, Clone)]
pub(crate) struct SummaryQuery {
    pub filter: TradeFilter,
    pub calendar: Calendar,
    pub granularity: Granularity,
    pub first_year: i32,
    pub last_year: i32,
    pub currency: Option<Currency>,
}

/// A summary's buckets resolved to periods, once: the year before the
/// range first (`prior` periods, for the first year's year-on-year
/// change), then the range's own; and the dates they span.
#[derive(Debug, Clone)]
pub(crate) struct Buckets {
    periods: Vec<Period>,
    prior: usize,
    span: DateRange,
}

impl Buckets {
    /// The dates every bucket (and the prior year) spans.
    pub(crate) fn span(&self) -> DateRange {
        self.span
    }
}

impl SummaryQuery {
    /// The query's buckets, or why its range does not resolve to periods.
    pub(crate) fn buckets(&self) -> Result<Buckets, PeriodError> {
        let mut periods = Vec::new();
        let mut prior = 0;
        for year in self.first_year - 1..=self.last_year {
            for part in self.granularity.parts() {
                match Period::from_calendar(self.calendar, year, part) {
                    Ok(period) => periods.push(period),
                    // The year before a calendar's first year is not needed.
                    Err(_) if year < self.first_year => continue,
                    Err(error) => return Err(error),
                }
                if year < self.first_year {
                    prior += 1;
                }
            }
        }
        let span = match (periods.first(), periods.last()) {
            (Some(first), Some(last)) => {
                DateRange::new(first.start(), last.end()).map_err(PeriodError::Year)?
            }
            _ => return Err(PeriodError::Year("the range holds no period".into())),
        };
        Ok(Buckets {
            periods,
            prior,
            span,
        })
    }
}

/// A change, and the report that states it when it is not computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SummaryChange {
    pub change: Change,
    pub stated_by: Option<Ulid>,
}

/// How many unallocated records a bucket (or a breakdown) lists; the rest
/// are only counted, so that an answer stays proportional to the question.
pub(crate) const MAX_UNALLOCATED_LISTED: usize = 20;

/// The records not counted: the first `MAX_UNALLOCATED_LISTED` with their
/// reasons, and how many there were.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UnallocatedList {
    pub listed: Vec<Unallocated>,
    pub count: u32,
}

impl UnallocatedList {
    /// Counts one more, listing it (the reason made only then) while
    /// there is room.
    fn push(&mut self, record: &TradeRecord, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.listed.len() < MAX_UNALLOCATED_LISTED {
            self.listed.push(Unallocated {
                record: record.id,
                period: record.period.clone(),
                reason: reason(),
            });
        }
    }

    fn extend(&mut self, other: UnallocatedList) {
        self.count += other.count;
        let room = MAX_UNALLOCATED_LISTED.saturating_sub(self.listed.len());
        self.listed.extend(other.listed.into_iter().take(room));
    }
}

/// A record a bucket did not count, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unallocated {
    pub record: Ulid,
    pub period: Period,
    pub reason: String,
}

/// One bucket of a summary.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub period: Period,
    pub total: Option<BoundedMoney>,
    /// Set when sources disagree.
    pub total_high: Option<BoundedMoney>,
    pub record_count: u32,
    pub sources: Vec<String>,
    pub change_from_previous: Option<SummaryChange>,
    pub change_from_year_earlier: Option<SummaryChange>,
    pub unallocated: UnallocatedList,
}

/// A summary: its buckets and their one currency.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub buckets: Vec<Bucket>,
    pub currency: Option<Currency>,
}

/// Why a summary cannot be made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SummaryError {
    /// The records are in these currencies, which are never added.
    MixedCurrencies(Vec<&'static str>),
    /// A sum does not fit a money value.
    Overflow,
}

/// The bound of a sum of two figures.
pub(crate) fn sum_bound(a: Bound, b: Bound) -> Bound {
    use Bound::*;
    match (a, b) {
        (Exact, other) | (other, Exact) => other,
        (AtLeast, AtLeast) => AtLeast,
        (AtMost, AtMost) => AtMost,
        _ => Approximate,
    }
}

/// A running sum of figures in one currency.
#[derive(Debug, Clone, Copy)]
struct Sum {
    nanos: i128,
    bound: Bound,
}

impl Sum {
    fn add(self, value: &BoundedMoney) -> Sum {
        Sum {
            nanos: self.nanos + value.money.total_nanos(),
            bound: sum_bound(self.bound, value.bound),
        }
    }

    fn money(self, currency: Currency) -> Result<BoundedMoney, SummaryError> {
        Ok(BoundedMoney {
            money: Money::from_nanos(currency, self.nanos).ok_or(SummaryError::Overflow)?,
            bound: self.bound,
        })
    }
}

const EMPTY: Sum = Sum {
    nanos: 0,
    bound: Bound::Exact,
};

/// Records of one exporter, importer and HS code: the line a bucket adds
/// up, separately from the others.
type Line = (CountryCode, CountryCode, HsCode);

/// A line's records in a bucket, by the dates they cover: each entry holds
/// the alternatives (one per source) for one figure.
type Figures<'a> = BTreeMap<(chrono::NaiveDate, chrono::NaiveDate), Vec<&'a TradeRecord>>;

/// Summarizes `records` (those matching the query's filter and currency
/// that overlap its span) into the query's buckets; `reports` (matching
/// the filter) may state a bucket's change on a year earlier.
pub(crate) fn summarize(
    query: &SummaryQuery,
    buckets: &Buckets,
    records: &[&TradeRecord],
    reports: &[&ExportReport],
) -> Result<Summary, SummaryError> {
    let currency = one_currency(records)?;
    let Buckets { periods, prior, .. } = buckets;
    let per_year = query.granularity.parts().len();
    // Each record goes to the buckets it overlaps (found by binary search,
    // the buckets being in date order), not every bucket to every record.
    let mut overlapping: Vec<Vec<&TradeRecord>> = vec![Vec::new(); periods.len()];
    for record in records {
        let r = record.period.range;
        let first = periods.partition_point(|p| p.range.end < r.start);
        for (i, period) in periods.iter().enumerate().skip(first) {
            if period.range.start > r.end {
                break;
            }
            overlapping[i].push(*record);
        }
    }
    let mut buckets: Vec<Bucket> = Vec::with_capacity(periods.len());
    for (period, records) in periods.iter().zip(&overlapping) {
        buckets.push(bucket(period.clone(), records, currency)?);
    }
    for i in 0..buckets.len() {
        let previous = i.checked_sub(1).map(|p| buckets[p].total);
        let year_earlier = i.checked_sub(per_year).map(|p| buckets[p].total);
        let here = buckets[i].total;
        buckets[i].change_from_previous = computed(here, previous.flatten());
        buckets[i].change_from_year_earlier = computed(here, year_earlier.flatten());
        if here.is_none() && i >= per_year {
            let earlier = buckets[i - per_year].period.range;
            buckets[i].change_from_year_earlier =
                stated(&buckets[i].period.range, &earlier, reports);
        }
    }
    Ok(Summary {
        buckets: buckets.split_off(*prior),
        currency,
    })
}

fn computed(here: Option<BoundedMoney>, base: Option<BoundedMoney>) -> Option<SummaryChange> {
    Some(SummaryChange {
        change: Change::between(&here?, &base?)?,
        stated_by: None,
    })
}

/// The change an export report states for exactly `period` against
/// exactly `earlier`, the latest such report winning.
fn stated(
    period: &DateRange,
    earlier: &DateRange,
    reports: &[&ExportReport],
) -> Option<SummaryChange> {
    reports
        .iter()
        .filter(|r| r.period.range == *period)
        .filter(|r| {
            r.baseline_period
                .as_ref()
                .is_some_and(|b| b.range == *earlier)
        })
        .filter_map(|r| {
            Some(SummaryChange {
                change: r.change?,
                stated_by: Some(r.id),
            })
        })
        .next_back()
}

/// One bucket under the counting rule.
fn bucket(
    period: Period,
    records: &[&TradeRecord],
    currency: Option<Currency>,
) -> Result<Bucket, SummaryError> {
    let range = period.range;
    let mut unallocated = UnallocatedList::default();
    // Per line, per period within the bucket: the alternatives.
    let mut lines: BTreeMap<Line, Figures<'_>> = BTreeMap::new();
    for record in records {
        let r = record.period.range;
        if !r.overlaps(&range) {
            continue;
        }
        if r.start < range.start || r.end > range.end {
            unallocated.push(record, || {
                format!(
                    "its period {} straddles the bucket {} ({}..{}); a figure is never prorated",
                    record.period.label, period.label, range.start, range.end
                )
            });
            continue;
        }
        lines
            .entry((record.exporter, record.importer, record.hs_code))
            .or_default()
            .entry((r.start, r.end))
            .or_default()
            .push(record);
    }
    // The period rule, per line: the figures kept, each with its
    // alternatives (one per source).
    let mut kept: BTreeMap<Line, Vec<(DateRange, &Vec<&TradeRecord>)>> = BTreeMap::new();
    for (line, periods) in &lines {
        let whole = periods.get(&(range.start, range.end));
        // Longer first, then earlier: the order in which parts are kept.
        let mut parts: Vec<_> = periods.iter().collect();
        parts.sort_by_key(|((start, end), _)| (*start - *end, *start));
        let figures = kept.entry(*line).or_default();
        for ((start, end), alternatives) in parts {
            let span = DateRange {
                start: *start,
                end: *end,
            };
            let dropped =
                if whole.is_some() && span != range {
                    Some(format!(
                        "a record for the whole bucket {} is counted instead of its parts",
                        period.label
                    ))
                } else {
                    figures.iter().find(|(k, _)| k.overlaps(&span)).map(|(k, _)| {
                    format!(
                        "it overlaps {}..{}, which is counted; overlapping parts are not added",
                        k.start, k.end
                    )
                })
                };
            if let Some(reason) = dropped {
                for r in alternatives {
                    unallocated.push(r, || reason.clone());
                }
                continue;
            }
            figures.push((span, alternatives));
        }
    }
    // The HS rule: a figure for a code is part of any figure for a broader
    // code of the same pair over an overlapping period, so only the
    // broadest is counted.
    let (mut low, mut high) = (EMPTY, EMPTY);
    let mut disagree = false;
    let mut counted = 0u32;
    let mut sources = BTreeSet::new();
    for ((exporter, importer, code), figures) in &kept {
        for (span, alternatives) in figures {
            let broader = code.headings().find(|heading| {
                kept.get(&(*exporter, *importer, *heading))
                    .is_some_and(|theirs| theirs.iter().any(|(s, _)| s.overlaps(span)))
            });
            if let Some(heading) = broader {
                let reason = format!(
                    "HS {} is counted for {exporter}→{importer} over this period, and it includes {}; a heading is never added to its own subheadings",
                    heading.as_str(),
                    code.as_str()
                );
                for r in alternatives.iter() {
                    unallocated.push(r, || reason.clone());
                }
                continue;
            }
            let by_value = |r: &&&TradeRecord| r.value.money.total_nanos();
            let (Some(min), Some(max)) = (
                alternatives.iter().min_by_key(by_value),
                alternatives.iter().max_by_key(by_value),
            ) else {
                continue;
            };
            disagree |= min.value.money != max.value.money || min.value.bound != max.value.bound;
            low = low.add(&min.value);
            high = high.add(&max.value);
            counted += alternatives.len() as u32;
            sources.extend(alternatives.iter().map(|r| source_name(r)));
        }
    }
    let (total, total_high) = match (counted, currency) {
        (1.., Some(currency)) => (
            Some(low.money(currency)?),
            if disagree {
                Some(high.money(currency)?)
            } else {
                None
            },
        ),
        _ => (None, None),
    };
    Ok(Bucket {
        period,
        total,
        total_high,
        record_count: counted,
        sources: sources.into_iter().collect(),
        change_from_previous: None,
        change_from_year_earlier: None,
        unallocated,
    })
}

fn source_name(record: &TradeRecord) -> String {
    if record.source.organization.is_empty() {
        record.source.outlet.clone()
    } else {
        record.source.organization.clone()
    }
}

/// The one currency of `records`, or the error naming them all.
fn one_currency(records: &[&TradeRecord]) -> Result<Option<Currency>, SummaryError> {
    let currencies: BTreeSet<&'static str> = records
        .iter()
        .map(|r| r.value.money.currency_code())
        .collect();
    if currencies.len() > 1 {
        return Err(SummaryError::MixedCurrencies(
            currencies.into_iter().collect(),
        ));
    }
    Ok(records.first().map(|r| r.value.money.currency))
}

mod breakdown;
#[cfg(test)]
mod tests;

pub(crate) use breakdown::{Breakdown, BreakdownBy, BreakdownQuery, Share, breakdown};
