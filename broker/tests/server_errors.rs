//! Bad input gets a Kafka error code or a closed connection, never a panic
//! and never a stored byte: each case here is something a broken or
//! hostile client can send.

mod common;

use broker::server::Broker;
use broker::wire::codec::decode_response;
use bytes::{Bytes, BytesMut};
use common::{call, open_broker};
use kafka_protocol::messages::{
    fetch_request::{FetchPartition, FetchTopic}, produce_request::{PartitionProduceData, TopicProduceData}, ApiKey,
    ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn produce(topic: &'static str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(1_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str(topic)))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))])])
}

async fn produce_error(broker: &Broker, request: &ProduceRequest) -> i16 {
    let response: ProduceResponse = call(broker, ApiKey::Produce, 7, request).await;
    response.responses[0].partition_responses[0].error_code
}

async fn fetch(broker: &Broker, topic: &'static str, offset: i64) -> kafka_protocol::messages::fetch_response::PartitionData {
    let request = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_static_str(topic)))
        .with_partitions(vec![FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = call(broker, ApiKey::Fetch, 11, &request).await;
    response.responses[0].partitions[0].clone()
}

#[tokio::test]
async fn malformed_frames_close_the_connection() {
    let (broker, dir) = open_broker("frames");
    for frame in [
        Bytes::from_static(b""),
        Bytes::from_static(b"\x00\x12"),
        Bytes::from_static(b"\x7f\x7f\x00\x00\x00\x00\x00\x01"), // unknown api key
        Bytes::from_static(b"\x00\x00\x00\x07\x00\x00\x00\x01\xff\xff\xff"), // produce v7, truncated body
    ] {
        assert!(broker.handle_frame(&frame).await.is_err(), "{frame:?} must close the connection");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn api_versions_at_an_unknown_version_answers_unsupported_version_with_the_table() {
    let (broker, dir) = open_broker("apiversions");
    let mut frame = Vec::new();
    frame.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    frame.extend_from_slice(&77i16.to_be_bytes());
    frame.extend_from_slice(&5i32.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    let response = broker.handle_frame(&Bytes::from(frame)).await.unwrap().unwrap();
    let (correlation_id, body) = decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, 0, &response).unwrap();
    assert_eq!(correlation_id, 5);
    assert_eq!(body.error_code, ResponseError::UnsupportedVersion.code());
    assert!(!body.api_keys.is_empty(), "the client learns what we do speak");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_produce_requests_get_error_codes_and_store_nothing() {
    let (broker, dir) = open_broker("produce");
    // Auto-create the topic through a good produce first.
    let _: kafka_protocol::messages::MetadataResponse = call(
        &broker,
        ApiKey::Metadata,
        4,
        &kafka_protocol::messages::MetadataRequest::default()
            .with_topics(Some(vec![kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))]))
            .with_allow_auto_topic_creation(true),
    )
    .await;
    assert_eq!(produce_error(&broker, &produce("t", -1, common::batch(None, b"good"))).await, 0);

    assert_eq!(
        produce_error(&broker, &produce("t", 5, common::batch(None, b"x"))).await,
        ResponseError::InvalidRequiredAcks.code()
    );
    assert_eq!(
        produce_error(&broker, &produce("missing", -1, common::batch(None, b"x"))).await,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let mut corrupt = BytesMut::from(&common::batch(None, b"flipped")[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40; // inside the CRC-covered records
    assert_eq!(
        produce_error(&broker, &produce("t", -1, corrupt.freeze())).await,
        ResponseError::CorruptMessage.code()
    );
    let truncated = common::batch(None, b"short").slice(0..20);
    assert_ne!(produce_error(&broker, &produce("t", -1, truncated)).await, 0);

    // Only the good record is in the log.
    let data = fetch(&broker, "t", 0).await;
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 1, "rejected batches must not be stored");
    let out_of_range = fetch(&broker, "t", 5).await;
    assert_eq!(out_of_range.error_code, ResponseError::OffsetOutOfRange.code());
    let _ = std::fs::remove_dir_all(dir);
}
