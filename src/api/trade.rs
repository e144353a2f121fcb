//! `tradewire.v1.TradeService`: thin handlers over the store.
//!
//! Get and List are served from each record's cached encoding
//! (`get_encoded`, `list_encoded`, routed by `trade_routes`); the trait's
//! message-building versions answer the same from the same lookups, for
//! the generated server.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::pre_encoded::{EncodedField, PreEncoded};
use super::{caller, compression, from_proto, to_proto};
use crate::domain::TradeRecord;
use crate::pb::{self, trade_service_server::TradeService};
use crate::store::{Store, Stored};

/// Field numbers of the answers written from cached encodings; a test
/// pins them to the generated messages.
const GET_RESPONSE_TRADE_RECORD: u32 = 1;
const LIST_RESPONSE_TRADE_RECORDS: u32 = 1;
const LIST_RESPONSE_NEXT_PAGE_TOKEN: u32 = 2;

/// The handlers of `TradeService`.
#[derive(Debug, Clone)]
pub(crate) struct TradeApi {
    store: Store,
}

/// A page of stored records, and the token of the next.
type RecordPage = (Vec<Arc<Stored<TradeRecord>>>, String);

impl TradeApi {
    pub(crate) fn new(store: Store) -> Self {
        TradeApi { store }
    }

    fn find(
        &self,
        request: &pb::GetTradeRecordRequest,
    ) -> Result<Arc<Stored<TradeRecord>>, Status> {
        Ok(self.store.get_trade_record(from_proto::id_of(request)?)?)
    }

    /// A page of records and its next_page_token.
    fn page(&self, request: pb::ListTradeRecordsRequest) -> Result<RecordPage, Status> {
        let query = from_proto::list(request, from_proto::trade_filter)?;
        let page = self
            .store
            .list_trade_records(&query.filter, query.after, query.limit);
        Ok((page.items, query.cursor.next_token(page.next)))
    }

    /// GetTradeRecord's answer around the record's cached encoding.
    pub(crate) fn get_encoded(
        &self,
        request: &pb::GetTradeRecordRequest,
    ) -> Result<PreEncoded<pb::GetTradeRecordResponse>, Status> {
        let value = self
            .store
            .read_trade_record(from_proto::id_of(request)?, to_proto::encoded_trade_record)?;
        Ok(PreEncoded::Field(EncodedField {
            number: GET_RESPONSE_TRADE_RECORD,
            value,
        }))
    }

    /// ListTradeRecords' answer: the page's cached record encodings, then
    /// the token.
    pub(crate) fn list_encoded(
        &self,
        request: pb::ListTradeRecordsRequest,
    ) -> Result<PreEncoded<pb::ListTradeRecordsResponse>, Status> {
        let (records, next_page_token) = self.page(request)?;
        let mut fields: Vec<EncodedField> = records
            .iter()
            .map(|r| EncodedField {
                number: LIST_RESPONSE_TRADE_RECORDS,
                value: to_proto::encoded_trade_record(r),
            })
            .collect();
        if !next_page_token.is_empty() {
            fields.push(EncodedField {
                number: LIST_RESPONSE_NEXT_PAGE_TOKEN,
                value: next_page_token.into(),
            });
        }
        Ok(PreEncoded::Fields(fields))
    }
}

#[tonic::async_trait]
impl TradeService for TradeApi {
    async fn create_trade_record(
        &self,
        request: Request<pb::CreateTradeRecordRequest>,
    ) -> Result<Response<pb::CreateTradeRecordResponse>, Status> {
        let accepted = compression::accepted(&request);
        let caller = caller::name(&request);
        let write = from_proto::create_trade_record(request.into_inner())?;
        let stored = self
            .store
            .create_trade_records(write.value, write.request)
            .await?;
        for record in &stored.value {
            caller::log_write(&caller, "CreateTradeRecord", &record.id, stored.repeated);
        }
        Ok(compression::answer(
            accepted,
            pb::CreateTradeRecordResponse {
                trade_record: stored.value.first().map(|r| to_proto::trade_record(r)),
                replayed: stored.repeated,
            },
        ))
    }

    async fn batch_create_trade_records(
        &self,
        request: Request<pb::BatchCreateTradeRecordsRequest>,
    ) -> Result<Response<pb::BatchCreateTradeRecordsResponse>, Status> {
        let accepted = compression::accepted(&request);
        let caller = caller::name(&request);
        let write = from_proto::batch_create_trade_records(request.into_inner())?;
        let stored = self
            .store
            .create_trade_records(write.value, write.request)
            .await?;
        for record in &stored.value {
            caller::log_write(
                &caller,
                "BatchCreateTradeRecords",
                &record.id,
                stored.repeated,
            );
        }
        Ok(compression::answer(
            accepted,
            pb::BatchCreateTradeRecordsResponse {
                trade_records: stored
                    .value
                    .iter()
                    .map(|r| to_proto::trade_record(r))
                    .collect(),
                replayed: stored.repeated,
            },
        ))
    }

    async fn get_trade_record(
        &self,
        request: Request<pb::GetTradeRecordRequest>,
    ) -> Result<Response<pb::GetTradeRecordResponse>, Status> {
        let accepted = compression::accepted(&request);
        let record = self.find(request.get_ref())?;
        Ok(compression::answer(
            accepted,
            pb::GetTradeRecordResponse {
                trade_record: Some(to_proto::trade_record(&record)),
            },
        ))
    }

    async fn list_trade_records(
        &self,
        request: Request<pb::ListTradeRecordsRequest>,
    ) -> Result<Response<pb::ListTradeRecordsResponse>, Status> {
        let accepted = compression::accepted(&request);
        let (records, next_page_token) = self.page(request.into_inner())?;
        Ok(compression::answer(
            accepted,
            pb::ListTradeRecordsResponse {
                trade_records: records.iter().map(|r| to_proto::trade_record(r)).collect(),
                next_page_token,
            },
        ))
    }

    async fn delete_trade_record(
        &self,
        request: Request<pb::DeleteTradeRecordRequest>,
    ) -> Result<Response<pb::DeleteTradeRecordResponse>, Status> {
        let accepted = compression::accepted(&request);
        let id = from_proto::id_of(request.get_ref())?;
        self.store.delete_trade_record(id).await?;
        caller::log_write(&caller::name(&request), "DeleteTradeRecord", &id, false);
        Ok(compression::answer(
            accepted,
            pb::DeleteTradeRecordResponse {},
        ))
    }

    async fn summarize_trade(
        &self,
        request: Request<pb::SummarizeTradeRequest>,
    ) -> Result<Response<pb::SummarizeTradeResponse>, Status> {
        let accepted = compression::accepted(&request);
        let (query, buckets) = from_proto::summary_query(request.get_ref())?;
        let summary = self.store.summarize(&query, &buckets)?;
        Ok(compression::answer(accepted, to_proto::summary(&summary)))
    }

    async fn update_trade_record(
        &self,
        request: Request<pb::UpdateTradeRecordRequest>,
    ) -> Result<Response<pb::UpdateTradeRecordResponse>, Status> {
        let accepted = compression::accepted(&request);
        let update = from_proto::update_trade_record(request.get_ref())?;
        let record = self
            .store
            .update_trade_record(update.id, update.patch, update.etag, update.source)
            .await?;
        caller::log_write(
            &caller::name(&request),
            "UpdateTradeRecord",
            &record.id,
            false,
        );
        Ok(compression::answer(
            accepted,
            pb::UpdateTradeRecordResponse {
                trade_record: Some(to_proto::trade_record(&record)),
            },
        ))
    }

    async fn list_trade_record_revisions(
        &self,
        request: Request<pb::ListTradeRecordRevisionsRequest>,
    ) -> Result<Response<pb::ListTradeRecordRevisionsResponse>, Status> {
        let accepted = compression::accepted(&request);
        let id = from_proto::id_of(request.get_ref())?;
        let history = self.store.trade_record_revisions(id)?;
        Ok(compression::answer(accepted, to_proto::revisions(&history)))
    }

    async fn breakdown_trade(
        &self,
        request: Request<pb::BreakdownTradeRequest>,
    ) -> Result<Response<pb::BreakdownTradeResponse>, Status> {
        let accepted = compression::accepted(&request);
        let query = from_proto::breakdown_query(request.get_ref())?;
        let breakdown = self.store.breakdown(&query)?;
        Ok(compression::answer(
            accepted,
            to_proto::breakdown(&breakdown),
        ))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::store::StoreConfig;

    fn record(year: i32) -> pb::TradeRecord {
        pb::TradeRecord {
            exporter: "IRN".into(),
            importer: "RUS".into(),
            hs_code: "8708".into(),
            commodity: "auto parts".into(),
            period: Some(pb::Period {
                spec: Some(pb::period::Spec::CalendarPeriod(pb::CalendarPeriod {
                    calendar: pb::Calendar::Gregorian.into(),
                    year,
                    part: None,
                })),
                ..Default::default()
            }),
            value: Some(pb::BoundedMoney {
                value: Some(pb::Money {
                    currency_code: "USD".into(),
                    units: 13_000_000,
                    nanos: 0,
                }),
                bound: pb::Bound::AtLeast.into(),
            }),
            source: Some(pb::Source {
                organization: "Iran Trade Promotion Organization".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn bytes<M: Message>(answer: &PreEncoded<M>) -> Vec<u8> {
        let mut out = Vec::new();
        answer.write(&mut out).unwrap();
        assert_eq!(out.len(), answer.encoded_len());
        out
    }

    /// The answers written from cached encodings are byte for byte the
    /// messages the generated path builds, on a cold and a warm cache.
    #[tokio::test]
    async fn encoded_answers_are_the_built_messages() {
        let api = TradeApi::new(Store::new(StoreConfig::default()).unwrap());
        let mut ids = Vec::new();
        for year in [2021, 2022, 2023] {
            let created = api
                .create_trade_record(Request::new(pb::CreateTradeRecordRequest {
                    trade_record: Some(record(year)),
                    request_id: String::new(),
                }))
                .await
                .unwrap()
                .into_inner();
            ids.push(created.trade_record.unwrap().id);
        }
        for _cold_then_warm in 0..2 {
            for id in &ids {
                let request = pb::GetTradeRecordRequest { id: id.clone() };
                let built = api
                    .get_trade_record(Request::new(request.clone()))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(
                    bytes(&api.get_encoded(&request).unwrap()),
                    built.encode_to_vec()
                );
            }
            let mut token = String::new();
            let mut pages = 0;
            loop {
                let request = pb::ListTradeRecordsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    filter: None,
                };
                let built = api
                    .list_trade_records(Request::new(request.clone()))
                    .await
                    .unwrap()
                    .into_inner();
                let encoded = bytes(&api.list_encoded(request).unwrap());
                assert_eq!(encoded, built.encode_to_vec());
                pages += 1;
                token = built.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            assert_eq!(pages, 2);
        }
    }

    #[test]
    fn the_written_field_numbers_are_the_generated_ones() {
        let pool = prost_reflect::DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let field = |message: &str, name: &str| {
            pool.get_message_by_name(message)
                .unwrap()
                .get_field_by_name(name)
                .unwrap()
                .number()
        };
        assert_eq!(
            GET_RESPONSE_TRADE_RECORD,
            field("tradewire.v1.GetTradeRecordResponse", "trade_record")
        );
        assert_eq!(
            LIST_RESPONSE_TRADE_RECORDS,
            field("tradewire.v1.ListTradeRecordsResponse", "trade_records")
        );
        assert_eq!(
            LIST_RESPONSE_NEXT_PAGE_TOKEN,
            field("tradewire.v1.ListTradeRecordsResponse", "next_page_token")
        );
    }
}
