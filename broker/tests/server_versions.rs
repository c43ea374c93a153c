//! Every API at every version we advertise gets a response that encodes
//! and decodes: advertising a version whose response we cannot build would
//! break real clients (librdkafka picks the highest common version).

mod common;

use broker::wire::SUPPORTED_APIS;
use common::{batch, call as round_trip, open_broker};
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic, fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic}, metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData}, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("versions"))
}

/// Creates the one-partition topic the tests use.
async fn create_topic(broker: &broker::server::Broker) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default().with_name(topic()).with_num_partitions(1).with_replication_factor(1)]);
    let created: CreateTopicsResponse = round_trip(broker, ApiKey::CreateTopics, 2, &request).await;
    assert_eq!(created.topics[0].error_code, 0);
}

#[tokio::test]
async fn every_advertised_version_answers() {
    let (broker, dir) = open_broker("versions");
    create_topic(&broker).await;

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
                            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch(None, b"hello")))]),
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
                ApiKey::DeleteTopics => {
                    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
                    use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
                    let doomed = TopicName(StrBytes::from_string(format!("deleted-v{version}")));
                    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                        .with_name(doomed.clone())
                        .with_num_partitions(1)
                        .with_replication_factor(1)]);
                    let created: CreateTopicsResponse = round_trip(&broker, ApiKey::CreateTopics, 5, &create).await;
                    assert_eq!(created.topics[0].error_code, 0, "v{version}");
                    let request = if version >= 6 {
                        DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_name(Some(doomed.clone()))])
                    } else {
                        DeleteTopicsRequest::default().with_topic_names(vec![doomed.clone()])
                    }
                    .with_timeout_ms(1_000);
                    let response: DeleteTopicsResponse = round_trip(&broker, api, version, &request).await;
                    assert_eq!(response.responses[0].error_code, 0, "v{version}");
                    assert_eq!(response.responses[0].name.as_ref(), Some(&doomed), "v{version}");
                }
                ApiKey::OffsetForLeaderEpoch => {
                    use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
                    use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
                    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                        OffsetForLeaderTopic::default().with_topic(topic()).with_partitions(vec![OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(0)
                            .with_leader_epoch(0)]),
                    ]);
                    let response: OffsetForLeaderEpochResponse = round_trip(&broker, api, version, &request).await;
                    let partition = &response.topics[0].partitions[0];
                    assert_eq!(partition.error_code, 0, "v{version}");
                    // A standalone broker's whole log is epoch 0.
                    assert_eq!(partition.leader_epoch, 0, "v{version}");
                    assert!(partition.end_offset >= 1, "v{version}: epoch 0 ends at the log end");
                }
                ApiKey::DescribeConfigs => {
                    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
                    use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
                    let request = DescribeConfigsRequest::default().with_resources(vec![
                        DescribeConfigsResource::default().with_resource_type(2).with_resource_name(topic().0),
                        DescribeConfigsResource::default().with_resource_type(4).with_resource_name(StrBytes::from_static_str("1")),
                        DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("no-such-topic")),
                    ]);
                    let response: DescribeConfigsResponse = round_trip(&broker, api, version, &request).await;
                    let (topic_result, broker_result, missing) = (&response.results[0], &response.results[1], &response.results[2]);
                    assert_eq!((topic_result.error_code, broker_result.error_code), (0, 0), "v{version}");
                    let retention = topic_result.configs.iter().find(|c| c.name.as_str() == "retention.ms").expect("retention.ms described");
                    assert_eq!(retention.config_source, 5, "v{version}: a default");
                    assert!(broker_result.configs.iter().any(|c| c.name.as_str() == "min.insync.replicas"), "v{version}");
                    assert_eq!(missing.error_code, 3, "v{version}: UNKNOWN_TOPIC_OR_PARTITION");
                }
                ApiKey::CreatePartitions => {
                    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
                    use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
                    let grown = TopicName(StrBytes::from_string(format!("grown-v{version}")));
                    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                        .with_name(grown.clone())
                        .with_num_partitions(1)
                        .with_replication_factor(1)]);
                    let created: CreateTopicsResponse = round_trip(&broker, ApiKey::CreateTopics, 5, &create).await;
                    assert_eq!(created.topics[0].error_code, 0, "v{version}");
                    let request = CreatePartitionsRequest::default()
                        .with_topics(vec![CreatePartitionsTopic::default().with_name(grown).with_count(2)])
                        .with_timeout_ms(1_000);
                    let response: CreatePartitionsResponse = round_trip(&broker, api, version, &request).await;
                    assert_eq!(response.results[0].error_code, 0, "v{version}");
                }
                ApiKey::InitProducerId => {
                    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, TransactionalId};
                    let request = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000).with_producer_id((-1).into()).with_producer_epoch(-1);
                    let first: InitProducerIdResponse = round_trip(&broker, api, version, &request).await;
                    let second: InitProducerIdResponse = round_trip(&broker, api, version, &request).await;
                    assert_eq!((first.error_code, first.producer_epoch, second.producer_epoch), (0, 0, 0), "v{version}");
                    assert!(first.producer_id.0 >= 0 && second.producer_id.0 > first.producer_id.0, "v{version}: fresh ids");
                    let transactional = request.with_transactional_id(Some(TransactionalId(StrBytes::from_string(format!("txn-v{version}")))));
                    let initialised: InitProducerIdResponse = round_trip(&broker, api, version, &transactional).await;
                    assert_eq!((initialised.error_code, initialised.producer_epoch), (0, 0), "v{version}: a new transactional id starts at epoch 0");
                    let again: InitProducerIdResponse = round_trip(&broker, api, version, &transactional).await;
                    assert_eq!((again.error_code, again.producer_id, again.producer_epoch), (0, initialised.producer_id, 1), "v{version}: the epoch is bumped");
                }
                ApiKey::WriteTxnMarkers => {
                    use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
                    use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
                    let marker = WritableTxnMarker::default()
                        .with_producer_id((900 + i64::from(version)).into())
                        .with_producer_epoch(0)
                        .with_transaction_result(false)
                        .with_coordinator_epoch(0)
                        .with_topics(vec![WritableTxnMarkerTopic::default().with_name(topic()).with_partition_indexes(vec![0, 9])]);
                    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
                    let response: WriteTxnMarkersResponse = round_trip(&broker, api, version, &request).await;
                    let codes: Vec<i16> = response.markers[0].topics[0].partitions.iter().map(|p| p.error_code).collect();
                    assert_eq!(codes, vec![0, 3], "v{version}: written, and UNKNOWN_TOPIC_OR_PARTITION");
                }
                // Each version of each group API is checked in server_groups.rs
                // (the KIP-848 ones in server_consumer_groups.rs; TxnOffsetCommit,
                // with the marker hook it needs, in the crate's
                // server::groups::txn_tests).
                ApiKey::FindCoordinator
                | ApiKey::JoinGroup
                | ApiKey::SyncGroup
                | ApiKey::Heartbeat
                | ApiKey::LeaveGroup
                | ApiKey::OffsetCommit
                | ApiKey::OffsetFetch
                | ApiKey::OffsetDelete
                | ApiKey::ListGroups
                | ApiKey::DescribeGroups
                | ApiKey::DeleteGroups
                | ApiKey::ConsumerGroupHeartbeat
                | ApiKey::ConsumerGroupDescribe
                | ApiKey::TxnOffsetCommit => {}
                // Each version of each transactional API is checked in server_txn.rs.
                ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn | ApiKey::EndTxn | ApiKey::ListTransactions | ApiKey::DescribeTransactions => {}
                other => panic!("{other:?} is advertised but not covered by this test"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// ListOffsets with timestamp -3 (KIP-734, v7): the offset and timestamp of
/// the record with the largest timestamp, which need not be the last one;
/// below v7 Kafka refuses it with UNSUPPORTED_VERSION.
#[tokio::test]
async fn list_offsets_max_timestamp() {
    let (broker, dir) = open_broker("max-timestamp");
    create_topic(&broker).await;
    for timestamp_ms in [1_000i64, 5_000, 3_000] {
        let records = broker::storage::build_batch(&[broker::storage::SimpleRecord { key: None, value: Some(b"v".to_vec()), timestamp_ms }]);
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(1_000).with_topic_data(vec![TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records.into()))])]);
        let response: ProduceResponse = round_trip(&broker, ApiKey::Produce, 9, &request).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
        .with_name(topic())
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-3)])]);
    let response: ListOffsetsResponse = round_trip(&broker, ApiKey::ListOffsets, 7, &request).await;
    let partition = &response.topics[0].partitions[0];
    assert_eq!((partition.error_code, partition.offset, partition.timestamp), (0, 1, 5_000), "the second record holds the largest timestamp");
    let response: ListOffsetsResponse = round_trip(&broker, ApiKey::ListOffsets, 6, &request).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 35, "UNSUPPORTED_VERSION below v7");
    let _ = std::fs::remove_dir_all(&dir);
}
