//! Topic configs reach the log: a compacted topic created through
//! CreateTopics keeps the latest value per key once the broker's
//! maintenance runs, rejects keyless records, and DeleteRecords moves the
//! log start. Unknown configs are refused at creation.

mod common;

use broker::server::Broker;
use bytes::Bytes;
use common::{call, open_broker};
use kafka_protocol::messages::{
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
    fetch_request::{FetchPartition, FetchTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, FetchRequest,
    FetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;

fn name(topic: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(topic))
}

async fn produce(broker: &Broker, topic: &'static str, key: Option<&'static [u8]>, value: &'static [u8]) -> i16 {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(1_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(common::batch(key, value)))])]);
    let response: ProduceResponse = call(broker, ApiKey::Produce, 7, &request).await;
    response.responses[0].partition_responses[0].error_code
}

async fn create(broker: &Broker, topic: &'static str, configs: &[(&'static str, &'static str)]) -> i16 {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| CreatableTopicConfig::default().with_name(StrBytes::from_static_str(k)).with_value(Some(StrBytes::from_static_str(v))))
                .collect(),
        )]);
    let response: CreateTopicsResponse = call(broker, ApiKey::CreateTopics, 5, &request).await;
    response.topics[0].error_code
}

/// (offset, key, value) of every record, fetching until the high watermark
/// (a fetch may stop at a segment's end, as Kafka's does).
async fn read_all(broker: &Broker, topic: &'static str) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    let mut next_offset = 0;
    for _ in 0..100 {
        let request = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default().with_partition(0).with_fetch_offset(next_offset).with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = call(broker, ApiKey::Fetch, 11, &request).await;
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        let mut records = partition.records.clone().unwrap_or_default();
        for r in RecordBatchDecoder::decode_all(&mut records).unwrap().into_iter().flat_map(|set| set.records) {
            let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap()).unwrap_or_default();
            next_offset = r.offset + 1;
            out.push((r.offset, text(r.key), text(r.value)));
        }
        if next_offset >= partition.high_watermark {
            return out;
        }
    }
    panic!("did not reach the high watermark in 100 fetches");
}

#[tokio::test]
async fn compacted_topic_keeps_latest_value_per_key_and_rejects_keyless_records() {
    let (broker, dir) = open_broker("topics");

    assert_eq!(create(&broker, "bad", &[("cleanup.polcy", "compact")]).await, ResponseError::InvalidConfig.code());
    assert_eq!(create(&broker, "bad", &[("cleanup.policy", "sometimes")]).await, ResponseError::InvalidConfig.code());
    // Tiny segments so that compaction has sealed segments to clean.
    assert_eq!(create(&broker, "kv", &[("cleanup.policy", "compact"), ("segment.bytes", "100"), ("min.cleanable.dirty.ratio", "0.01")]).await, 0);

    for (key, value) in [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"c", b"1"), (b"a", b"3"), (b"b", b"2"), (b"d", b"1")] {
        assert_eq!(produce(&broker, "kv", Some(key), value).await, 0);
    }
    assert_eq!(produce(&broker, "kv", None, b"keyless").await, ResponseError::InvalidRecord.code());
    broker.maintain_logs();

    let records = read_all(&broker, "kv").await;
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets increase: {offsets:?}");
    let mut latest = std::collections::BTreeMap::new();
    for (_, key, value) in &records {
        assert!(latest.insert(key.clone(), value.clone()).is_none(), "key {key} appears twice after compaction: {records:?}");
    }
    let expected: std::collections::BTreeMap<String, String> =
        [("a", "3"), ("b", "2"), ("c", "1"), ("d", "1")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(latest, expected);

    // DeleteRecords moves the log start; reads from below it are out of range.
    let request = DeleteRecordsRequest::default().with_timeout_ms(1_000).with_topics(vec![DeleteRecordsTopic::default()
        .with_name(name("kv"))
        .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(-1)])]);
    let response: DeleteRecordsResponse = call(&broker, ApiKey::DeleteRecords, 1, &request).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    assert_eq!(response.topics[0].partitions[0].low_watermark, 7);
    let _ = std::fs::remove_dir_all(dir);
}

/// DescribeConfigs shows a topic's own settings as topic overrides and the
/// rest as defaults, and only the keys asked for when some are named.
#[tokio::test]
async fn describe_configs_shows_topic_overrides_and_defaults() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
    let (broker, dir) = open_broker("describe-configs");
    assert_eq!(create(&broker, "configured", &[("retention.ms", "123456"), ("cleanup.policy", "compact")]).await, 0);
    let describe = |keys: Option<Vec<&'static str>>| {
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("configured"))
            .with_configuration_keys(keys.map(|k| k.into_iter().map(StrBytes::from_static_str).collect()))])
    };
    let response: DescribeConfigsResponse = call(&broker, ApiKey::DescribeConfigs, 4, &describe(None)).await;
    let configs = &response.results[0].configs;
    let get = |key: &str| configs.iter().find(|c| c.name.as_str() == key).map(|c| (c.value.as_ref().map(|v| v.to_string()), c.config_source));
    assert_eq!(get("retention.ms"), Some((Some("123456".into()), 1)), "an override, from the topic");
    assert_eq!(get("cleanup.policy"), Some((Some("compact".into()), 1)));
    assert_eq!(get("max.message.bytes").map(|(_, source)| source), Some(5), "the rest are defaults");
    let response: DescribeConfigsResponse = call(&broker, ApiKey::DescribeConfigs, 4, &describe(Some(vec!["retention.ms"]))).await;
    let names: Vec<&str> = response.results[0].configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["retention.ms"], "only the keys asked for");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn create_partitions(broker: &Broker, topic: &'static str, count: i32, validate_only: bool) -> i16 {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default().with_name(name(topic)).with_count(count)])
        .with_timeout_ms(1_000)
        .with_validate_only(validate_only);
    let response: CreatePartitionsResponse = call(broker, ApiKey::CreatePartitions, 3, &request).await;
    response.results[0].error_code
}

/// CreatePartitions grows a topic in place: the old partition keeps its
/// records, the new ones take records at once, the count survives a
/// restart; shrinking, a dry run and an unknown topic change nothing.
#[tokio::test]
async fn create_partitions_grows_a_topic_and_the_growth_survives_a_restart() {
    let (broker, dir) = open_broker("create-partitions");
    assert_eq!(create(&broker, "grown", &[]).await, 0);
    assert_eq!(produce(&broker, "grown", None, b"before").await, 0);
    assert_eq!(create_partitions(&broker, "grown", 3, true).await, 0, "a dry run is accepted");
    assert_eq!(common::produce(&broker, "grown", 2, b"x").await.0, ResponseError::UnknownTopicOrPartition.code(), "and changes nothing");
    assert_eq!(create_partitions(&broker, "grown", 3, false).await, 0);
    assert_eq!(common::produce(&broker, "grown", 2, b"new").await, (0, 0), "a new partition takes records at offset 0");
    assert_eq!(create_partitions(&broker, "grown", 2, false).await, ResponseError::InvalidPartitions.code(), "no shrinking");
    assert_eq!(create_partitions(&broker, "absent", 2, false).await, ResponseError::UnknownTopicOrPartition.code());
    drop(broker);
    let broker = broker::server::Broker::open(
        broker::config::BrokerConfig { data_dir: dir.clone(), ..broker::config::BrokerConfig::default() },
        std::sync::Arc::new(broker::disk::RealDisk),
        broker::clock::ManualClock::new(1_000),
    )
    .unwrap();
    assert_eq!(read_all(&broker, "grown").await.into_iter().map(|(_, _, v)| v).collect::<Vec<_>>(), ["before"]);
    assert_eq!(common::produce(&broker, "grown", 2, b"again").await, (0, 1), "partition 2 is there after the restart");
    let _ = std::fs::remove_dir_all(&dir);
}
