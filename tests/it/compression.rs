//! gzip and zstd, in both directions, as the client chooses: requests sent
//! compressed are read, and answers are compressed only for clients that
//! accept it, except answers under 1 KiB and the export report stream,
//! which are always plain (`api::compression`).
//! Covers the encode-once routes and the generated servers.

use tokio_stream::StreamExt;
use tonic::codec::CompressionEncoding;
use tradewire::pb;
use tradewire::pb::announcement_service_client::AnnouncementServiceClient;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::trade_service_client::TradeServiceClient;

use prost::Message;

use crate::common::raw_h2::RawGrpc;
use crate::common::*;

fn encoding_of<T>(response: &tonic::Response<T>) -> Option<String> {
    response
        .metadata()
        .get("grpc-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn calls_are_compressed_both_ways_when_the_client_asks() {
    let server = TestServer::start().await;
    for (encoding, name) in [
        (CompressionEncoding::Gzip, "gzip"),
        (CompressionEncoding::Zstd, "zstd"),
    ] {
        let channel = server.channel().await;
        let mut trade = TradeServiceClient::new(channel.clone())
            .send_compressed(encoding)
            .accept_compressed(encoding);
        let created = trade
            .create_trade_record(pb::CreateTradeRecordRequest {
                trade_record: Some(record("IRN", "RUS", "8708", 2022, 13)),
                request_id: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(encoding_of(&created).as_deref(), Some(name));
        let id = created.into_inner().trade_record.unwrap().id;
        let got = trade
            .get_trade_record(pb::GetTradeRecordRequest { id: id.clone() })
            .await
            .unwrap();
        assert_eq!(
            encoding_of(&got).as_deref(),
            Some(name),
            "the encode-once Get"
        );
        assert_eq!(got.into_inner().trade_record.unwrap().id, id);
        let listed = trade
            .list_trade_records(pb::ListTradeRecordsRequest::default())
            .await
            .unwrap();
        assert_eq!(encoding_of(&listed).as_deref(), Some(name));
        assert!(!listed.into_inner().trade_records.is_empty());

        let mut reports = ExportReportServiceClient::new(channel.clone())
            .send_compressed(encoding)
            .accept_compressed(encoding);
        let stream = reports
            .subscribe_export_reports(pb::SubscribeExportReportsRequest::default())
            .await
            .unwrap();
        // Events are small and encoded once for every subscriber: the
        // stream reads a compressed request but always answers plain.
        assert_eq!(encoding_of(&stream), None, "the stream");
        let mut stream = stream.into_inner();
        stream.next().await.unwrap().unwrap();

        let mut announcements = AnnouncementServiceClient::new(channel)
            .send_compressed(encoding)
            .accept_compressed(encoding);
        let listed = announcements
            .list_announcements(pb::ListAnnouncementsRequest::default())
            .await
            .unwrap();
        assert_eq!(encoding_of(&listed).as_deref(), Some(name));
    }
    // A client that does not ask gets plain answers.
    let mut plain = server.trade().await;
    let listed = plain
        .list_trade_records(pb::ListTradeRecordsRequest::default())
        .await
        .unwrap();
    assert_eq!(encoding_of(&listed), None);
}

/// As Python grpcio, grpc-js and grpc-java do unasked, the client accepts
/// gzip: answers of a few hundred bytes come back plain, a page or a batch
/// of records compressed; on the generated servers and on the encode-once
/// routes alike.
#[tokio::test]
async fn small_answers_are_plain_even_to_a_client_that_accepts_gzip() {
    let server = TestServer::start().await;
    let accepts_gzip = [("grpc-accept-encoding", "identity,deflate,gzip")];
    let mut raw = RawGrpc::connect(server.addr).await;

    let created = raw
        .unary_with(
            "/tradewire.v1.TradeService/CreateTradeRecord",
            &pb::CreateTradeRecordRequest {
                trade_record: Some(record("IRN", "RUS", "8708", 1999, 13)),
                request_id: String::new(),
            },
            &accepts_gzip,
        )
        .await;
    assert_eq!(created.grpc_status, "0");
    assert!(!created.compressed, "a created record is sent plain");
    let created = pb::CreateTradeRecordResponse::decode(created.message).unwrap();
    assert_eq!(created.trade_record.unwrap().exporter, "IRN");
    let batch = raw
        .unary_with(
            "/tradewire.v1.TradeService/BatchCreateTradeRecords",
            &pb::BatchCreateTradeRecordsRequest {
                requests: (2000..2010)
                    .map(|year| create(record("IRN", "RUS", "8708", year, 13)))
                    .collect(),
                request_id: String::new(),
            },
            &accepts_gzip,
        )
        .await;
    assert_eq!(batch.grpc_status, "0");
    assert!(batch.compressed, "ten created records are compressed");
    let ids: Vec<String> = server
        .trade()
        .await
        .list_trade_records(pb::ListTradeRecordsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .trade_records
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids.len(), 11);

    let get = raw
        .unary_with(
            "/tradewire.v1.TradeService/GetTradeRecord",
            &pb::GetTradeRecordRequest { id: ids[0].clone() },
            &accepts_gzip,
        )
        .await;
    assert_eq!(get.grpc_status, "0");
    assert!(
        !get.compressed,
        "a {}-byte Get answer is sent plain",
        get.message.len()
    );
    let got = pb::GetTradeRecordResponse::decode(get.message).unwrap();
    assert_eq!(got.trade_record.unwrap().id, ids[0]);

    let list = raw
        .unary_with(
            "/tradewire.v1.TradeService/ListTradeRecords",
            &pb::ListTradeRecordsRequest::default(),
            &accepts_gzip,
        )
        .await;
    assert_eq!(list.grpc_status, "0");
    assert!(list.compressed, "a page of eleven records is compressed");
}
