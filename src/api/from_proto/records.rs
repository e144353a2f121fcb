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
        revision: _,
        etag: _,
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
        revision: 1,
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

/// The fields UpdateTradeRecord may change; the others say which figure a
/// record is.
const UPDATABLE: [&str; 3] = ["value", "quantity", "commodity"];

/// What an UpdateTradeRecord changes.
#[derive(Debug)]
pub(crate) struct Update {
    pub id: Ulid,
    pub patch: crate::domain::RecordPatch,
    pub etag: Option<u32>,
    pub source: Option<crate::domain::Source>,
}

/// UpdateTradeRecord: the id, the masked fields' new values, the etag.
pub(crate) fn update_trade_record(request: &pb::UpdateTradeRecordRequest) -> Result<Update> {
    let pb::UpdateTradeRecordRequest {
        trade_record,
        update_mask,
        etag,
        revision_source,
    } = request;
    let mut v = Violations::default();
    let record = v.required("trade_record", trade_record.as_ref());
    let id = record.and_then(|r| {
        super::scalars::id("trade_record.id", &r.id)
            .map_err(|e| v.absorb(e))
            .ok()
    });
    let mut patch = crate::domain::RecordPatch::default();
    let paths = update_mask.as_ref().map_or(&[][..], |m| m.paths.as_slice());
    if paths.is_empty() {
        v.add(
            "update_mask.paths",
            "is required: one or more of value, quantity, commodity",
        );
    }
    for (i, path) in paths.iter().enumerate() {
        let field = format!("update_mask.paths[{i}]");
        if !UPDATABLE.contains(&path.as_str()) {
            v.add(field, format!("{path:?} cannot be updated; updatable: value, quantity, commodity (delete and create to change what a record is a figure of)"));
            continue;
        }
        if paths[..i].contains(path) {
            v.add(field, format!("{path:?} is named twice"));
            continue;
        }
        let Some(r) = record else { continue };
        match path.as_str() {
            "value" => {
                patch.value = v
                    .required("trade_record.value", r.value.as_ref())
                    .and_then(|m| bounded_money(&mut v, "trade_record.value", m));
            }
            "quantity" => {
                patch.quantity = Some(
                    r.quantity
                        .as_ref()
                        .and_then(|q| quantity(&mut v, "trade_record.quantity", q)),
                );
            }
            _ => {
                patch.commodity = Some(v.text(
                    "trade_record.commodity",
                    &r.commodity,
                    super::MAX_NAME_LEN,
                    false,
                ));
            }
        }
    }
    let etag = if etag.is_empty() {
        None
    } else {
        v.ok(
            "etag",
            etag.trim_matches('"')
                .strip_prefix('r')
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| {
                    format!(
                        "{} is not an etag of this server (\"r3\")",
                        crate::domain::quote(etag)
                    )
                }),
        )
    };
    let source = revision_source
        .as_ref()
        .and_then(|s| self::source(&mut v, "revision_source", Some(s)));
    let update = id.map(|id| Update {
        id,
        patch,
        etag,
        source,
    });
    v.finish(update)
}
