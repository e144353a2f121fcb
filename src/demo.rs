//! The demo data set: every fact of the seed article, kept as a JSON file of
//! API requests (`demo/iran-russia-auto-parts-2024.json`) and loaded through
//! the same handlers, and so the same validation, as the RPCs.
//!
//! Each step is one request in the protobuf JSON mapping, under the name of
//! its RPC. A step may carry a `"ref"` name; a later string `"$ref:NAME"`
//! becomes the id the named step created. Every step carries a request_id,
//! so loading twice stores nothing twice.

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;
use tonic::Request;

use crate::api::announcement::AnnouncementApi;
use crate::api::export_report::ExportReportApi;
use crate::api::trade::TradeApi;
use crate::pb::announcement_service_server::AnnouncementService;
use crate::pb::export_report_service_server::ExportReportService;
use crate::pb::trade_service_server::TradeService;

pub(crate) const DEMO_JSON: &str = include_str!("../demo/iran-russia-auto-parts-2024.json");

/// What the demo load created.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Trade records created.
    pub trade_records: usize,
    /// Export reports published.
    pub export_reports: usize,
    /// Announcements created.
    pub announcements: usize,
}

/// Why a step of the demo failed: any error, said once at `load`.
type Failed = Box<dyn std::error::Error + Send + Sync>;

fn decode<M: prost::Message + Default>(
    pool: &DescriptorPool,
    name: &str,
    json: Value,
) -> Result<M, Failed> {
    let descriptor = pool
        .get_message_by_name(name)
        .ok_or_else(|| format!("demo: no message {name} in the descriptor set"))?;
    let message =
        DynamicMessage::deserialize(descriptor, json).map_err(|e| format!("demo: {name}: {e}"))?;
    Ok(message.transcode_to()?)
}

/// Replaces every `"$ref:NAME"` string with the id created by step NAME.
fn resolve(value: &mut Value, refs: &HashMap<String, String>) -> Result<(), Failed> {
    match value {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("$ref:") {
                *s = refs
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("demo: unknown ref {name:?}"))?;
            }
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| resolve(v, refs))?,
        Value::Object(map) => map.values_mut().try_for_each(|v| resolve(v, refs))?,
        _ => {}
    }
    Ok(())
}

/// Loads the demo data set through the handlers, in its steps' order; an
/// error says which step failed and why.
pub(crate) async fn load(
    trade: &TradeApi,
    announcements: &AnnouncementApi,
    reports: &ExportReportApi,
) -> Result<Loaded, String> {
    run_steps(trade, announcements, reports)
        .await
        .map_err(|e| e.to_string())
}

async fn run_steps(
    trade: &TradeApi,
    announcements: &AnnouncementApi,
    reports: &ExportReportApi,
) -> Result<Loaded, Failed> {
    let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET)?;
    let document: Value = serde_json::from_str(DEMO_JSON)?;
    let steps = document
        .get("steps")
        .and_then(Value::as_array)
        .ok_or("demo: no steps array")?;
    let mut refs = HashMap::new();
    let mut loaded = Loaded::default();
    for step in steps {
        let step = step.as_object().ok_or("demo: a step is not an object")?;
        let name = step.get("ref").and_then(Value::as_str);
        let (rpc, body) = step
            .iter()
            .find(|(key, _)| key.as_str() != "ref" && key.as_str() != "note")
            .ok_or("demo: a step has no request")?;
        let mut body = body.clone();
        resolve(&mut body, &refs)?;
        let id = match rpc.as_str() {
            "CreateTradeRecord" => {
                let request = decode(&pool, "tradewire.v1.CreateTradeRecordRequest", body)?;
                let response = trade.create_trade_record(Request::new(request)).await?;
                loaded.trade_records += 1;
                response.into_inner().trade_record.map(|r| r.id)
            }
            "PublishExportReport" => {
                let request = decode(&pool, "tradewire.v1.PublishExportReportRequest", body)?;
                let response = reports.publish_export_report(Request::new(request)).await?;
                loaded.export_reports += 1;
                response.into_inner().export_report.map(|r| r.id)
            }
            "CreateAnnouncement" => {
                let request = decode(&pool, "tradewire.v1.CreateAnnouncementRequest", body)?;
                let response = announcements
                    .create_announcement(Request::new(request))
                    .await?;
                loaded.announcements += 1;
                response.into_inner().announcement.map(|a| a.id)
            }
            other => return Err(format!("demo: unknown RPC {other:?}").into()),
        };
        if let (Some(name), Some(id)) = (name, id) {
            refs.insert(name.to_owned(), id);
        }
    }
    Ok(loaded)
}
