//! DeleteTopics (and CreateTopics' checks and configs) in cluster mode, end
//! to end over real TCP: one controller
//! (a single-voter Raft quorum) and one broker in this process. Deleting
//! goes through the quorum; afterwards Metadata no longer lists the topic,
//! Produce and Fetch answer UNKNOWN_TOPIC_OR_PARTITION, and a topic created
//! again under the same name (a new topic id) serves none of the old
//! incarnation's records, although the broker opens partition logs lazily
//! from directories named after the topic. Also WriteTxnMarkers in
//! cluster mode, where a marker is answered once the high watermark passed
//! it (the partition leads replicated data, as for acks=all).
//!
//! Run: `cargo test -p dlog-broker --test cluster_delete_topics`. Plain
//! build only: it needs real TCP, real time and a multi-threaded runtime
//! (the simulation covers cluster mode in `scenarios/`).
#![cfg(not(madsim))]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use broker::clock::{ManualClock, SystemClock};
use broker::config::BrokerConfig;
use broker::controller::ControllerConfig;
use broker::disk::RealDisk;
use broker::quorum::{run_controller, ControllerNodeConfig, ControllerStats};
use broker::raft::RaftConfig;
use broker::server::Broker;
use common::{call, record_values as values};
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic,
    fetch_response::PartitionData,
    metadata_request::MetadataRequestTopic,
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const UNKNOWN_TOPIC: i16 = 3; // UNKNOWN_TOPIC_OR_PARTITION
/// How long the quorum may take to elect a leader and admit the broker.
const STARTUP_MS_MAX: u64 = 20_000;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A controller and a broker (node 1 both) on fresh ports and a fresh
/// directory; the broker has registered and created nothing yet.
struct Cluster {
    broker: Arc<Broker>,
    dir: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    async fn start(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("dlog-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (raft_port, api_port) = (free_port(), free_port());
        let node = ControllerNodeConfig {
            node_id: 1,
            raft_peers: BTreeMap::from([(1, format!("127.0.0.1:{raft_port}"))]),
            raft_listen: format!("127.0.0.1:{raft_port}").parse().unwrap(),
            api_listen: format!("127.0.0.1:{api_port}").parse().unwrap(),
            data_dir: dir.join("__raft"),
            raft: RaftConfig::new(1, vec![1]),
            fsync: true,
            tick_ms: 10,
            metadata: ControllerConfig::default(),
            seed: 1,
        };
        let controller = tokio::spawn(async move {
            let outcome = run_controller(node, Arc::new(RealDisk), Arc::new(SystemClock), Arc::new(ControllerStats::default())).await;
            panic!("the controller stopped: {outcome:?}");
        });
        let config = BrokerConfig {
            data_dir: dir.join("broker"),
            node_id: 1,
            controller_quorum_voters: Some(format!("1@127.0.0.1:{api_port}")),
            broker_heartbeat_interval_ms: 100,
            auto_create_topics: false,
            // The marker test produces transactional batches with no
            // coordinator behind them (the partition side alone).
            transaction_partition_verification_enable: false,
            ..BrokerConfig::default()
        };
        let broker = Broker::open(config, Arc::new(RealDisk), ManualClock::new(1_000)).unwrap();
        let membership = tokio::spawn(broker::server::cluster::run_membership(broker.clone()));
        let cluster = Self { broker, dir, tasks: vec![controller, membership] };
        // Ready once the quorum has a leader and lists the broker unfenced.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(STARTUP_MS_MAX);
        loop {
            let response: MetadataResponse = call(&cluster.broker, ApiKey::Metadata, 9, &MetadataRequest::default().with_topics(None)).await;
            if !response.brokers.is_empty() {
                return cluster;
            }
            assert!(tokio::time::Instant::now() < deadline, "the broker did not join the quorum within {STARTUP_MS_MAX} ms");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("broker")
    }

    async fn create(&self, topic: &str, partitions: i32) -> i16 {
        let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
        let response: CreateTopicsResponse = call(&self.broker, ApiKey::CreateTopics, 5, &request).await;
        response.topics[0].error_code
    }

    /// Creates a topic just deleted: retries while the name is held back.
    async fn create_after_delete(&self, topic: &str, partitions: i32) -> i16 {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(STARTUP_MS_MAX);
        loop {
            let code = self.create(topic, partitions).await;
            if code != ResponseError::TopicAlreadyExists.code() || tokio::time::Instant::now() >= deadline {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn delete(&self, topic: &str) -> i16 {
        let request = DeleteTopicsRequest::default().with_topic_names(vec![name(topic)]).with_timeout_ms(5_000);
        let response: DeleteTopicsResponse = call(&self.broker, ApiKey::DeleteTopics, 5, &request).await;
        assert_eq!(response.responses[0].name.as_ref().map(|n| n.0.as_str()), Some(topic));
        response.responses[0].error_code
    }

    /// Every topic Metadata lists (a fresh read of the quorum; it also
    /// refreshes the broker's view used by Produce and Fetch).
    async fn listed(&self) -> Vec<String> {
        let response: MetadataResponse = call(&self.broker, ApiKey::Metadata, 9, &MetadataRequest::default().with_topics(None)).await;
        response.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_string())).collect()
    }

    async fn metadata_code(&self, topic: &str) -> i16 {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]))
            .with_allow_auto_topic_creation(false);
        let response: MetadataResponse = call(&self.broker, ApiKey::Metadata, 9, &request).await;
        response.topics[0].error_code
    }

    async fn produce(&self, topic: &str, value: &'static [u8]) -> (i16, i64) {
        common::produce(&self.broker, topic, 0, value).await
    }

    async fn fetch(&self, topic: &str, offset: i64) -> PartitionData {
        common::fetch(&self.broker, topic, 0, offset).await
    }
}

/// The topic id in a partition directory's `partition.metadata`.
fn stored_topic_id(partition_dir: &Path) -> u64 {
    let text = std::fs::read_to_string(partition_dir.join("partition.metadata")).expect("partition.metadata");
    let id = text.strip_prefix("version: 0\ntopic_id: ").and_then(|rest| rest.strip_suffix('\n')).expect("format");
    id.parse().expect("decimal id")
}

fn log_files(partition_dir: &Path) -> Vec<String> {
    match std::fs::read_dir(partition_dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".log"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_through_the_quorum_and_recreate_serves_no_old_records() {
    let cluster = Cluster::start("cluster-delete").await;
    assert_eq!(cluster.create("t", 1).await, 0);
    assert_eq!(cluster.listed().await, ["t"]);
    for value in [b"old-1" as &'static [u8], b"old-2", b"old-3"] {
        assert_eq!(cluster.produce("t", value).await.0, 0);
    }
    assert_eq!(values(&cluster.fetch("t", 0).await), ["old-1", "old-2", "old-3"]);
    let partition_dir = cluster.data_dir().join("t-0");
    let old_id = stored_topic_id(&partition_dir);

    assert_eq!(cluster.delete("t").await, 0);

    // Gone for Produce and Fetch at once (the broker dropped it from its view) ...
    assert_eq!(cluster.produce("t", b"late").await.0, UNKNOWN_TOPIC);
    assert_eq!(cluster.fetch("t", 0).await.error_code, UNKNOWN_TOPIC);
    // ... and for Metadata, which reads the quorum.
    assert_eq!(cluster.listed().await, Vec::<String>::new());
    assert_eq!(cluster.metadata_code("t").await, UNKNOWN_TOPIC);
    assert_eq!(cluster.produce("t", b"late").await.0, UNKNOWN_TOPIC);
    // Deleting it again, or a topic that never existed: UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(cluster.delete("t").await, UNKNOWN_TOPIC);
    assert_eq!(cluster.delete("never-was").await, UNKNOWN_TOPIC);

    // Created again: the quorum holds the name back (TOPIC_ALREADY_EXISTS,
    // "marked for deletion") until the broker's heartbeat says it has acted
    // on the deletion; then a new id, and the partition starts empty
    // although its directory held the old incarnation's log.
    assert_eq!(cluster.create_after_delete("t", 1).await, 0);
    assert_eq!(cluster.listed().await, ["t"]);
    let data = cluster.fetch("t", 0).await;
    assert_eq!((data.error_code, data.high_watermark), (0, 0), "the old records are not served");
    assert_eq!(values(&data), Vec::<String>::new());
    let new_id = stored_topic_id(&partition_dir);
    assert!(new_id > old_id, "partition.metadata names the new incarnation: {old_id} -> {new_id}");
    assert_eq!(cluster.produce("t", b"new-1").await, (0, 0), "offsets start again at 0");
    assert_eq!(values(&cluster.fetch("t", 0).await), ["new-1"]);
}

/// When the view read after a delete provably postdates the deleted
/// topic's creation (it holds a topic created later), the broker removes
/// the deleted topic's files right away, not only when the name returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_topic_data_is_removed_once_a_later_view_proves_it_gone() {
    let cluster = Cluster::start("cluster-delete-reclaim").await;
    assert_eq!(cluster.create("gone", 1).await, 0);
    assert_eq!(cluster.create("later", 1).await, 0);
    assert_eq!(cluster.listed().await, ["gone", "later"]);
    assert_eq!(cluster.produce("gone", b"x").await.0, 0);
    assert_eq!(cluster.produce("later", b"y").await.0, 0);
    let gone_dir = cluster.data_dir().join("gone-0");
    assert!(!log_files(&gone_dir).is_empty());

    assert_eq!(cluster.delete("gone").await, 0);
    assert_eq!(log_files(&gone_dir), Vec::<String>::new(), "the deleted topic's log files are removed");
    assert!(!gone_dir.join("partition.metadata").exists());
    assert!(!cluster.data_dir().join("gone.topic").exists());
    // The other topic is untouched.
    assert_eq!(values(&cluster.fetch("later", 0).await), ["y"]);
    assert_eq!(cluster.delete("later").await, 0);
    assert_eq!(cluster.listed().await, Vec::<String>::new());
    let code = cluster.delete("later").await;
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());
}

/// CreateTopics in cluster mode checks what a standalone broker checks
/// (configs, validate_only) before anything reaches the quorum, and the
/// topic's configs reach every replica's log: a record over the topic's
/// `max.message.bytes` is refused with MESSAGE_TOO_LARGE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_validates_and_topic_configs_reach_the_log() {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    let cluster = Cluster::start("cluster-create-configs").await;
    let create = |topic: &str, configs: &[(&str, &str)], validate_only: bool| {
        CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                )])
            .with_validate_only(validate_only)
    };
    let code = |response: CreateTopicsResponse| response.topics[0].error_code;
    let invalid_config = ResponseError::InvalidConfig.code();
    let bad_value: CreateTopicsResponse = call(&cluster.broker, ApiKey::CreateTopics, 5, &create("bad", &[("retention.ms", "soon")], false)).await;
    assert_eq!(code(bad_value), invalid_config);
    let unknown: CreateTopicsResponse = call(&cluster.broker, ApiKey::CreateTopics, 5, &create("bad", &[("no.such.setting", "1")], false)).await;
    assert_eq!(code(unknown), invalid_config);
    let dry_run: CreateTopicsResponse = call(&cluster.broker, ApiKey::CreateTopics, 5, &create("small", &[("max.message.bytes", "200")], true)).await;
    assert_eq!(code(dry_run), 0, "validate_only accepts a valid topic");
    assert!(cluster.listed().await.is_empty(), "neither the refused topics nor the dry run exist");

    let created: CreateTopicsResponse = call(&cluster.broker, ApiKey::CreateTopics, 5, &create("small", &[("max.message.bytes", "200")], false)).await;
    assert_eq!(code(created), 0);
    assert_eq!(cluster.listed().await, ["small"]);
    assert_eq!(cluster.produce("small", b"fits").await.0, 0);
    let big: &'static [u8] = Box::leak(vec![b'x'; 500].into_boxed_slice());
    assert_eq!(cluster.produce("small", big).await.0, ResponseError::MessageTooLarge.code(), "the topic's max.message.bytes is in force");
    let dry_run_again: CreateTopicsResponse = call(&cluster.broker, ApiKey::CreateTopics, 5, &create("small", &[], true)).await;
    assert_eq!(code(dry_run_again), ResponseError::TopicAlreadyExists.code(), "validate_only sees the existing topic");
}

/// CreatePartitions through the quorum: the controller assigns the new
/// partition, Metadata shows it, the broker opens it and takes records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_through_the_quorum_adds_a_partition_that_takes_records() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
    let cluster = Cluster::start("cluster-create-partitions").await;
    assert_eq!(cluster.create("g", 1).await, 0);
    assert_eq!(cluster.listed().await, ["g"]);
    assert_eq!(cluster.produce("g", b"first").await.0, 0);
    let grow = |count: i32| {
        CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default().with_name(name("g")).with_count(count)])
            .with_timeout_ms(5_000)
    };
    let response: CreatePartitionsResponse = call(&cluster.broker, ApiKey::CreatePartitions, 3, &grow(2)).await;
    assert_eq!(response.results[0].error_code, 0, "{:?}", response.results[0].error_message);
    let response: CreatePartitionsResponse = call(&cluster.broker, ApiKey::CreatePartitions, 3, &grow(2)).await;
    assert_eq!(response.results[0].error_code, ResponseError::InvalidPartitions.code(), "2 adds none");
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("g")))]))
        .with_allow_auto_topic_creation(false);
    let metadata: MetadataResponse = call(&cluster.broker, ApiKey::Metadata, 9, &request).await;
    assert_eq!(metadata.topics[0].partitions.len(), 2);
    assert_eq!(common::produce(&cluster.broker, "g", 1, b"second").await, (0, 0), "the new partition takes records");
    assert_eq!(values(&cluster.fetch("g", 0).await), ["first"], "the old one keeps its records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_in_cluster_mode_is_answered_once_committed_and_moves_the_lso() {
    use broker::storage::{build_batch, set_producer, SimpleRecord};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, ProducerId, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

    let cluster = Cluster::start("cluster-txn-marker").await;
    assert_eq!(cluster.create("tx", 1).await, 0);
    assert_eq!(cluster.listed().await, ["tx"], "and the broker's view is fresh");
    let mut batch = build_batch(&[SimpleRecord { key: None, value: Some(b"t1".to_vec()), timestamp_ms: 1_000 }]);
    batch[21..23].copy_from_slice(&(1i16 << 4).to_be_bytes());
    set_producer(&mut batch, 11, 0, 0);
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(name("tx"))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch.into()))])]);
    let produced: ProduceResponse = call(&cluster.broker, ApiKey::Produce, 9, &request).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let read_committed = |offset: i64| {
        FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_bytes(1 << 20).with_isolation_level(1).with_topics(vec![FetchTopic::default()
            .with_topic(name("tx"))
            .with_partitions(vec![FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20)])])
    };
    let open: FetchResponse = call(&cluster.broker, ApiKey::Fetch, 11, &read_committed(0)).await;
    assert_eq!((open.responses[0].partitions[0].high_watermark, open.responses[0].partitions[0].last_stable_offset), (1, 0));

    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(11))
        .with_producer_epoch(0)
        .with_transaction_result(false)
        .with_coordinator_epoch(3)
        .with_topics(vec![WritableTxnMarkerTopic::default().with_name(name("tx")).with_partition_indexes(vec![0])]);
    let written: WriteTxnMarkersResponse = call(&cluster.broker, ApiKey::WriteTxnMarkers, 1, &WriteTxnMarkersRequest::default().with_markers(vec![marker])).await;
    assert_eq!(written.markers[0].topics[0].partitions[0].error_code, 0);
    // Answered: the marker is below the high watermark, and decided.
    let ended: FetchResponse = call(&cluster.broker, ApiKey::Fetch, 11, &read_committed(0)).await;
    let p = &ended.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (2, 2));
    let aborted: Vec<(i64, i64)> = p.aborted_transactions.iter().flatten().map(|a| (a.producer_id.0, a.first_offset)).collect();
    assert_eq!(aborted, vec![(11, 0)]);
}
