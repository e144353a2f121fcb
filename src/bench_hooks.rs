//! Hooks for `tradewire-bench`, outside the supported API: the encode-once
//! codec (so the bench's floor server sends bytes the way tradewire does)
//! and a store driven as the handlers drive it, without a transport (for
//! the `scale` mode's list times and memory per record).

use tonic::Status;

use crate::api::{from_proto, to_proto};
use crate::domain::TradeFilter;
use crate::pb;
use crate::store::{Store, StoreConfig};

pub use crate::api::pre_encoded::{EncodedField, PreEncoded, PreEncodedCodec};

/// An in-memory store with the default configuration.
#[derive(Debug, Clone)]
pub struct StoreProbe {
    store: Store,
}

/// A validated `TradeFilter`, ready to list with.
#[derive(Debug, Clone)]
pub struct ProbeFilter(TradeFilter);

impl StoreProbe {
    /// An in-memory store with the default configuration; fails only if
    /// its committer thread cannot start.
    pub fn new() -> std::io::Result<StoreProbe> {
        Ok(StoreProbe {
            store: Store::new(StoreConfig::default())?,
        })
    }

    /// Validates `records` as CreateTradeRecord does and stores them, all
    /// or nothing.
    pub async fn create_trade_records(&self, records: &[pb::TradeRecord]) -> Result<(), Status> {
        let mut violations = from_proto::Violations::default();
        let records: Option<Vec<_>> = records
            .iter()
            .map(|r| from_proto::trade_record(&mut violations, "trade_record", Some(r)))
            .collect();
        let records = violations.finish(records)?;
        self.store.create_trade_records(records, None).await?;
        Ok(())
    }

    /// Validates a filter as ListTradeRecords does.
    pub fn filter(&self, filter: Option<&pb::TradeFilter>) -> Result<ProbeFilter, Status> {
        let mut violations = from_proto::Violations::default();
        let filter = from_proto::trade_filter(&mut violations, "filter", filter);
        Ok(ProbeFilter(violations.finish(Some(filter))?))
    }

    /// The number of items on the first page of `limit` that `filter`
    /// matches, found as ListTradeRecords finds it.
    pub fn first_page_len(&self, filter: &ProbeFilter, limit: usize) -> usize {
        self.store
            .list_trade_records(&filter.0, None, limit)
            .items
            .len()
    }

    /// Answers a SummarizeTrade request as the handler does; returns how
    /// many records its buckets counted.
    pub fn summarize(&self, request: &pb::SummarizeTradeRequest) -> Result<u32, Status> {
        let (query, buckets) = from_proto::summary_query(request)?;
        let summary = self.store.summarize(&query, &buckets)?;
        Ok(summary.buckets.iter().map(|b| b.record_count).sum())
    }

    /// Reads every record once, in pages, and makes its cached encoding as
    /// a Get does; returns how many records were read.
    pub fn read_every_record(&self) -> u64 {
        let everything = TradeFilter::default();
        let mut after = None;
        let mut read = 0;
        loop {
            let page = self.store.list_trade_records(&everything, after, 1000);
            for record in &page.items {
                let _ = to_proto::encoded_trade_record(record);
            }
            read += page.items.len() as u64;
            match page.next {
                Some(next) => after = Some(next),
                None => return read,
            }
        }
    }
}
