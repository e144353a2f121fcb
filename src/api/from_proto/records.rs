//! Trade records: the record itself and the create and batch-create
//! requests that carry it.

use ulid::Ulid;

use super::scalars::{bounded_money, quantity, required_period, source, trade_keys};
use super::{MAX_BATCH, Violations, Write, join, request_key};
use crate::domain::TradeRecord;
use crate::error::Result;
use crate::pb;

/// A trade record to store; id and create_time are left for the store.
pub(crate) fn trade_record(
    v: &mut Violations,
    path: &str,
    value: Option<&pb::TradeRecord>,
) -> Option<TradeRecord> {
    let pb::TradeRecord {
        // Output only: the store assigns them.
        id: _,
        create_time: _,
        exporter,
        importer,
        hs_code,
        commodity,
        period,
        value,
        quantity,
        source,
    } = v.required(path, value)?;
    let keys = trade_keys(v, path, [exporter, importer, hs_code, commodity]);
    let period = required_period(v, &join(path, "period"), period.as_ref());
    let money_field = join(path, "value");
    let money = v
        .required(&money_field, value.as_ref())
        .and_then(|m| bounded_money(v, &money_field, m));
    let quantity = quantity
        .as_ref()
        .and_then(|q| self::quantity(v, &join(path, "quantity"), q));
    let source = self::source(v, &join(path, "source"), source.as_ref());
    Some(TradeRecord {
        id: Ulid::nil(),
        create_time: std::time::SystemTime::UNIX_EPOCH,
        exporter: keys.exporter?,
        importer: keys.importer?,
        hs_code: keys.hs_code?,
        commodity: keys.commodity,
        period: period?,
        value: money?,
        quantity,
        source: source?,
        encoded: Default::default(),
    })
}

/// CreateTradeRecord: one record, stored as a batch of one.
pub(crate) fn create_trade_record(
    mut request: pb::CreateTradeRecordRequest,
) -> Result<Write<Vec<TradeRecord>>> {
    let mut v = Violations::default();
    let key = request_key(&mut v, &mut request, |r| std::mem::take(&mut r.request_id));
    let pb::CreateTradeRecordRequest {
        trade_record,
        request_id: _,
    } = &request;
    let record = self::trade_record(&mut v, "trade_record", trade_record.as_ref());
    let record = v.finish(record)?;
    Ok(Write {
        value: vec![record],
        request: key,
    })
}

/// BatchCreateTradeRecords: 1 to `MAX_BATCH` records, all or nothing; the
/// request id belongs to the batch.
pub(crate) fn batch_create_trade_records(
    mut request: pb::BatchCreateTradeRecordsRequest,
) -> Result<Write<Vec<TradeRecord>>> {
    let mut v = Violations::default();
    let key = request_key(&mut v, &mut request, |r| std::mem::take(&mut r.request_id));
    let pb::BatchCreateTradeRecordsRequest {
        requests,
        request_id: _,
    } = &request;
    if requests.is_empty() {
        v.add("requests", format!("has no entries; send 1 to {MAX_BATCH}"));
    }
    let records = v.each(("", "requests"), requests, MAX_BATCH, |v, path, entry| {
        let pb::CreateTradeRecordRequest {
            trade_record,
            request_id,
        } = entry;
        if !request_id.is_empty() {
            v.add(
                join(path, "request_id"),
                "set request_id on the batch, not on its entries",
            );
        }
        self::trade_record(v, &join(path, "trade_record"), trade_record.as_ref())
    });
    let records = v.finish(Some(records))?;
    Ok(Write {
        value: records,
        request: key,
    })
}
