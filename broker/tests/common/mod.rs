//! What the broker's request-level tests share: a broker on a temporary
//! directory, one request/response round trip through `handle_frame`, and
//! a one-record RecordBatch.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::sync::Arc;

use broker::clock::ManualClock;
use broker::config::BrokerConfig;
use broker::disk::RealDisk;
use broker::server::Broker;
use broker::wire::codec::{decode_response, encode_request};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic,
    fetch_request::{FetchPartition, FetchTopic},
    fetch_response::PartitionData,
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// A broker on a fresh directory under the system temp dir; the caller
/// removes the directory when done.
pub fn open_broker(name: &str) -> (Arc<Broker>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("dlog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = BrokerConfig {
        data_dir: dir.clone(),
        ..BrokerConfig::default()
    };
    (Broker::open(config, Arc::new(RealDisk), ManualClock::new(1_000)).unwrap(), dir)
}

/// One request through the broker's frame handler; panics unless a
/// response comes back and decodes with the same correlation id.
pub async fn call<Req: Encodable, Resp: Decodable>(broker: &Broker, api: ApiKey, version: i16, request: &Req) -> Resp {
    let correlation_id = i32::from(version) + 100;
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("broker-tests")));
    let frame = encode_request(&header, request).unwrap_or_else(|e| panic!("{api:?} v{version} request: {e}"));
    let response = broker
        .handle_frame(&frame)
        .await
        .unwrap_or_else(|e| panic!("{api:?} v{version}: connection closed: {e}"))
        .unwrap_or_else(|| panic!("{api:?} v{version}: no response"));
    let (answered_id, body) =
        decode_response::<Resp>(api, version, &response).unwrap_or_else(|e| panic!("{api:?} v{version} response: {e}"));
    assert_eq!(answered_id, correlation_id);
    body
}

/// A RecordBatch v2 holding one record.
pub fn batch(key: Option<&'static [u8]>, value: &'static [u8]) -> Bytes {
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
        key: key.map(Bytes::from_static),
        value: Some(Bytes::from_static(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &[record], &options).unwrap();
    buf.freeze()
}

/// A topic name for requests.
pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Produce (acks -1) of one record to partition `partition`: (error code,
/// base offset).
pub async fn produce(broker: &Broker, topic: &str, partition: i32, value: &'static [u8]) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(1_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(topic_name(topic))
        .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(batch(None, value)))])]);
    let response: ProduceResponse = call(broker, ApiKey::Produce, 7, &request).await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Fetch of partition `partition` from `offset`: the partition's answer.
pub async fn fetch(broker: &Broker, topic: &str, partition: i32, offset: i64) -> PartitionData {
    let request = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default()
        .with_topic(topic_name(topic))
        .with_partitions(vec![FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = call(broker, ApiKey::Fetch, 11, &request).await;
    response.responses[0].partitions[0].clone()
}

/// The values of every record in a fetch answer, as text.
pub fn record_values(partition: &PartitionData) -> Vec<String> {
    let mut records = partition.records.clone().unwrap_or_default();
    RecordBatchDecoder::decode_all(&mut records)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap())
        .collect()
}

/// CreateTopics (v5) of one topic with `partitions` partitions: its error code.
pub async fn create_topic(broker: &Broker, topic: &str, partitions: i32) -> i16 {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(topic_name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let response: CreateTopicsResponse = call(broker, ApiKey::CreateTopics, 5, &request).await;
    response.topics[0].error_code
}

/// A broker for the group tests on a fresh directory `dlog-NAME-PID`:
/// three `__consumer_offsets` partitions, no initial rebalance delay (the
/// clock is manual: a first join would wait forever); the caller removes
/// the directory.
pub fn open_group_broker(dir: &std::path::Path) -> Arc<Broker> {
    let mut config = BrokerConfig { data_dir: dir.to_path_buf(), offsets_topic_num_partitions: 3, ..BrokerConfig::default() };
    config.group.initial_rebalance_delay_ms = 0;
    Broker::open(config, Arc::new(RealDisk), ManualClock::new(1_000)).unwrap()
}

/// A fresh (removed) directory under the system temp dir.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The advertised versions of `api`.
pub fn advertised_versions(api: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (min, max) = broker::wire::supported_range(api).expect("advertised");
    min..=max
}

/// `text` as the protocol's string type.
pub fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}
