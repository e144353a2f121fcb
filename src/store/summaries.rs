//! Summaries and breakdowns as the store computes them: the matching
//! records read under the read lock, within a scan budget, then counted by
//! `domain::summary`.

use std::sync::Arc;

use super::Store;
use super::seqlog::keys_after;
use super::stored::Stored;
use crate::domain::summary::{
    self, Breakdown, BreakdownQuery, Buckets, Summary, SummaryError, SummaryQuery,
};
use crate::domain::{DateRange, ExportReport, TradeFilter, TradeRecord};
use crate::error::{Error, Result};

/// Most records a summary examines; past it the filter must be narrower.
const SUMMARY_SCAN_BUDGET: usize = 250_000;

impl Store {
    /// The records matching `filter` (whose period overlaps `span`) in
    /// `currency` if given, read from the indexes under the read lock, at
    /// most `SUMMARY_SCAN_BUDGET` examined.
    fn counted_records(
        &self,
        filter: &TradeFilter,
        span: DateRange,
        currency: Option<iso_currency::Currency>,
    ) -> Result<Vec<Arc<Stored<TradeRecord>>>> {
        let state = self.read();
        let candidates = state.record_index.candidates(filter);
        let mut records = Vec::new();
        let mut examined = 0usize;
        for key in candidates.after(None, keys_after(&state.records, None)) {
            examined += 1;
            if examined > SUMMARY_SCAN_BUDGET {
                return Err(Error::ScanBudget {
                    budget: SUMMARY_SCAN_BUDGET,
                });
            }
            let Some(record) = state.records.get(&key) else {
                continue;
            };
            if filter.matches(record.as_ref())
                && record.period.range.overlaps(&span)
                && currency.is_none_or(|c| c == record.value.money.currency)
            {
                records.push(Arc::clone(record));
            }
        }
        metrics::histogram!("tradewire_summary_examined_records").record(examined as f64);
        Ok(records)
    }

    /// Summarizes the records matching `query` whose period overlaps
    /// the buckets' dates, with the export reports that may state a
    /// bucket's change. Reads under the lock; counts after releasing it.
    pub(crate) fn summarize(&self, query: &SummaryQuery, buckets: &Buckets) -> Result<Summary> {
        let span = buckets.span();
        let records = self.counted_records(&query.filter, span, query.currency)?;
        let reports: Vec<Arc<Stored<ExportReport>>> = {
            let state = self.read();
            let candidates = state.report_index.candidates(&query.filter);
            candidates
                .after(None, keys_after(state.reports.items_by_sequence(), None))
                .filter_map(|seq| state.reports.get(seq))
                .filter(|r| r.change.is_some() && query.filter.matches(r.as_ref()))
                .filter(|r| r.period.range.overlaps(&span))
                .cloned()
                .collect()
        };
        metrics::counter!("tradewire_summaries_total", "kind" => "summary").increment(1);
        summary::summarize(query, buckets, &items(&records), &items(&reports))
            .map_err(summary_error)
    }

    /// Ranks the partners or HS codes of `query`'s period.
    pub(crate) fn breakdown(&self, query: &BreakdownQuery) -> Result<Breakdown> {
        let records = self.counted_records(&query.filter, query.period.range, query.currency)?;
        metrics::counter!("tradewire_summaries_total", "kind" => "breakdown").increment(1);
        summary::breakdown(query, &items(&records)).map_err(summary_error)
    }
}

/// The items of stored values, as the domain's counting reads them.
fn items<T>(stored: &[Arc<Stored<T>>]) -> Vec<&T> {
    stored.iter().map(|item| &***item).collect()
}

fn summary_error(error: SummaryError) -> Error {
    match error {
        SummaryError::MixedCurrencies(codes) => Error::MixedCurrencies(codes),
        SummaryError::Overflow => {
            Error::FailedPrecondition("a total does not fit a Money value".into())
        }
    }
}
