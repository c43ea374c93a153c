//! Every API at every version we advertise gets a response that encodes
//! and decodes: advertising a version whose response we cannot build would
//! break real clients (librdkafka picks the highest common version).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use broker::clock::ManualClock;
use broker::config::BrokerConfig;
use broker::disk::RealDisk;
use broker::server::Broker;
use broker::wire::codec::{decode_response, encode_request};
use broker::wire::SUPPORTED_APIS;
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic, fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic}, metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData}, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("versions"))
}

fn batch() -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_000,
        key: None,
        value: Some(Bytes::from_static(b"hello")),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &[record], &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.freeze()
}

async fn round_trip<Req: Encodable, Resp: Decodable>(broker: &Broker, api: ApiKey, version: i16, request: &Req) -> Resp {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(i32::from(version) + 100)
        .with_client_id(Some(StrBytes::from_static_str("versions-test")));
    let frame = encode_request(&header, request).unwrap_or_else(|e| panic!("{api:?} v{version} request: {e}"));
    let response = broker
        .handle_frame(&frame)
        .await
        .unwrap_or_else(|e| panic!("{api:?} v{version}: connection closed: {e}"))
        .unwrap_or_else(|| panic!("{api:?} v{version}: no response"));
    let (correlation_id, body) =
        decode_response::<Resp>(api, version, &response).unwrap_or_else(|e| panic!("{api:?} v{version} response: {e}"));
    assert_eq!(correlation_id, i32::from(version) + 100);
    body
}

#[tokio::test]
async fn every_advertised_version_answers() {
    let dir = std::env::temp_dir().join(format!("dlog-versions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = BrokerConfig { data_dir: dir.clone(), ..BrokerConfig::default() };
    let broker = Broker::open(config, Arc::new(RealDisk), ManualClock::new(1_000)).unwrap();
    let created: CreateTopicsResponse = round_trip(
        &broker,
        ApiKey::CreateTopics,
        2,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(topic())
            .with_num_partitions(1)
            .with_replication_factor(1)]),
    )
    .await;
    assert_eq!(created.topics[0].error_code, 0);

    for &(api, min, max) in SUPPORTED_APIS {
        for version in min..=max {
            match api {
                ApiKey::ApiVersions => {
                    let response: ApiVersionsResponse = round_trip(&broker, api, version, &ApiVersionsRequest::default()).await;
                    assert_eq!(response.error_code, 0);
                    assert_eq!(response.api_keys.len(), SUPPORTED_APIS.len());
                }
                ApiKey::Metadata => {
                    let request = MetadataRequest::default()
                        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic()))]));
                    let response: MetadataResponse = round_trip(&broker, api, version, &request).await;
                    assert_eq!(response.topics[0].partitions.len(), 1, "v{version}");
                }
                ApiKey::CreateTopics => {
                    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(format!("created-v{version}"))))
                        .with_num_partitions(2)
                        .with_replication_factor(1)]);
                    let response: CreateTopicsResponse = round_trip(&broker, api, version, &request).await;
                    assert_eq!(response.topics[0].error_code, 0, "v{version}");
                }
                ApiKey::Produce => {
                    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(1_000).with_topic_data(vec![
                        TopicProduceData::default()
                            .with_name(topic())
                            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch()))]),
                    ]);
                    let response: ProduceResponse = round_trip(&broker, api, version, &request).await;
                    assert_eq!(response.responses[0].partition_responses[0].error_code, 0, "v{version}");
                }
                ApiKey::Fetch => {
                    let request = FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_bytes(1 << 20)
                        .with_isolation_level(1)
                        .with_topics(vec![FetchTopic::default().with_topic(topic()).with_partitions(vec![
                            FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20),
                        ])]);
                    let response: FetchResponse = round_trip(&broker, api, version, &request).await;
                    let partition = &response.responses[0].partitions[0];
                    assert_eq!(partition.error_code, 0, "v{version}");
                    assert!(partition.records.as_ref().is_some_and(|r| !r.is_empty()), "v{version} returns the records");
                }
                ApiKey::ListOffsets => {
                    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                        ListOffsetsTopic::default()
                            .with_name(topic())
                            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)]),
                    ]);
                    let response: ListOffsetsResponse = round_trip(&broker, api, version, &request).await;
                    let partition = &response.topics[0].partitions[0];
                    assert_eq!(partition.error_code, 0, "v{version}");
                    assert!(partition.offset >= 1, "v{version}: latest offset after a produce");
                }
                ApiKey::DeleteRecords => {
                    use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
                    let request = kafka_protocol::messages::DeleteRecordsRequest::default().with_timeout_ms(1_000).with_topics(vec![
                        DeleteRecordsTopic::default()
                            .with_name(topic())
                            .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(0)]),
                    ]);
                    let response: kafka_protocol::messages::DeleteRecordsResponse = round_trip(&broker, api, version, &request).await;
                    let partition = &response.topics[0].partitions[0];
                    assert_eq!(partition.error_code, 0, "v{version}");
                    assert_eq!(partition.low_watermark, 0, "v{version}");
                }
                other => panic!("{other:?} is advertised but not covered by this test"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
