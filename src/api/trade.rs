//! `tradewire.v1.TradeService`: thin handlers over the store.

use tonic::{Request, Response, Status};
use ulid::Ulid;

use super::from_proto::{self as from, Check};
use super::{page_token, request_key, to_proto};
use crate::pb::{self, trade_service_server::TradeService};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct TradeApi {
    store: Store,
}

impl TradeApi {
    pub fn new(store: Store) -> Self {
        TradeApi { store }
    }
}

#[tonic::async_trait]
impl TradeService for TradeApi {
    async fn create_trade_record(
        &self,
        request: Request<pb::CreateTradeRecordRequest>,
    ) -> Result<Response<pb::CreateTradeRecordResponse>, Status> {
        let mut req = request.into_inner();
        let mut check = Check::default();
        let key = request_key(&mut check, &mut req, |r| std::mem::take(&mut r.request_id));
        let record = from::trade_record(&mut check, "trade_record", req.trade_record.as_ref());
        let record = check.finish(record)?;
        let stored = self.store.create_trade_records(vec![record], key).await?;
        let trade_record = stored.first().map(|r| to_proto::trade_record(r));
        Ok(Response::new(pb::CreateTradeRecordResponse {
            trade_record,
        }))
    }

    async fn batch_create_trade_records(
        &self,
        request: Request<pb::BatchCreateTradeRecordsRequest>,
    ) -> Result<Response<pb::BatchCreateTradeRecordsResponse>, Status> {
        let mut req = request.into_inner();
        let mut check = Check::default();
        let key = request_key(&mut check, &mut req, |r| std::mem::take(&mut r.request_id));
        if req.requests.is_empty() || req.requests.len() > from::MAX_BATCH {
            check.fail(
                "requests",
                format!(
                    "has {} entries; send 1 to {}",
                    req.requests.len(),
                    from::MAX_BATCH
                ),
            );
        }
        let records: Vec<_> = req
            .requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if !r.request_id.is_empty() {
                    check.fail(
                        format!("requests[{i}].request_id"),
                        "set request_id on the batch, not on its entries",
                    );
                }
                from::trade_record(
                    &mut check,
                    &format!("requests[{i}].trade_record"),
                    r.trade_record.as_ref(),
                )
            })
            .collect();
        let records = check.finish(records.into_iter().collect::<Option<Vec<_>>>())?;
        let stored = self.store.create_trade_records(records, key).await?;
        Ok(Response::new(pb::BatchCreateTradeRecordsResponse {
            trade_records: stored.iter().map(|r| to_proto::trade_record(r)).collect(),
        }))
    }

    async fn get_trade_record(
        &self,
        request: Request<pb::GetTradeRecordRequest>,
    ) -> Result<Response<pb::GetTradeRecordResponse>, Status> {
        let id = from::id("id", &request.get_ref().id)?;
        let record = self.store.get_trade_record(id)?;
        Ok(Response::new(pb::GetTradeRecordResponse {
            trade_record: Some(to_proto::trade_record(&record)),
        }))
    }

    async fn list_trade_records(
        &self,
        request: Request<pb::ListTradeRecordsRequest>,
    ) -> Result<Response<pb::ListTradeRecordsResponse>, Status> {
        let req = request.into_inner();
        let limit = from::page_size(req.page_size)?;
        let mut check = Check::default();
        let filter = from::trade_filter(&mut check, "filter", req.filter.as_ref());
        let filter = check.finish(Some(filter))?;
        let (cursor, after) =
            page_token::Cursor::read::<Ulid>(&req.page_token, &req.filter.unwrap_or_default())?;
        let page = self.store.list_trade_records(&filter, after, limit);
        Ok(Response::new(pb::ListTradeRecordsResponse {
            trade_records: page
                .items
                .iter()
                .map(|r| to_proto::trade_record(r))
                .collect(),
            next_page_token: cursor.next_token(page.next),
        }))
    }

    async fn delete_trade_record(
        &self,
        request: Request<pb::DeleteTradeRecordRequest>,
    ) -> Result<Response<pb::DeleteTradeRecordResponse>, Status> {
        let id = from::id("id", &request.get_ref().id)?;
        self.store.delete_trade_record(id).await?;
        Ok(Response::new(pb::DeleteTradeRecordResponse {}))
    }
}
