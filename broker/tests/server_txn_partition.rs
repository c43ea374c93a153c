//! Transactions on the partition side, through the broker's request
//! handler on a standalone broker: transactional batches hold the last
//! stable offset at their transaction's first offset; WriteTxnMarkers ends
//! the transaction (a commit on one partition, an abort on another);
//! read_committed fetches read only below the last stable offset and get
//! the aborted transactions of what they read, read_uncommitted reads to
//! the high watermark; ListOffsets answers by isolation level; a stale
//! coordinator epoch is fenced; and all of it survives a restart (the
//! state is rebuilt from the markers in the log).

mod common;

use std::sync::Arc;

use broker::clock::ManualClock;
use broker::config::BrokerConfig;
use broker::disk::RealDisk;
use broker::server::Broker;
use broker::storage::{build_batch, build_control_batch, set_producer, SimpleRecord};
use common::{call, create_topic, open_broker, topic_name};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest,
    ProduceResponse, ProducerId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::records::RecordBatchDecoder;

const TOPIC: &str = "txn";
const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

/// A batch of `values` from producer `(pid, epoch)` at `first_seq`, with
/// the transactional attribute bit if `transactional`.
fn producer_batch(pid: i64, epoch: i16, first_seq: i32, transactional: bool, values: &[&str]) -> bytes::Bytes {
    let records: Vec<SimpleRecord> =
        values.iter().map(|v| SimpleRecord { key: None, value: Some(v.as_bytes().to_vec()), timestamp_ms: 1_000 }).collect();
    let mut batch = build_batch(&records);
    if transactional {
        batch[21..23].copy_from_slice(&(1i16 << 4).to_be_bytes());
    }
    set_producer(&mut batch, pid, epoch, first_seq);
    batch.into()
}

async fn send(broker: &Broker, partition: i32, records: bytes::Bytes) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(1_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(topic_name(TOPIC))
        .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))])]);
    let response: ProduceResponse = call(broker, ApiKey::Produce, 9, &request).await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn fetch_isolated(broker: &Broker, partition: i32, offset: i64, isolation_level: i8) -> PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = call(broker, ApiKey::Fetch, 11, &request).await;
    response.responses[0].partitions[0].clone()
}

/// The data records' values (control records left out) of a fetch answer.
fn data_values(partition: &PartitionData) -> Vec<String> {
    let mut records = partition.records.clone().unwrap_or_default();
    RecordBatchDecoder::decode_all(&mut records)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r| !r.control)
        .map(|r| String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap())
        .collect()
}

fn aborted(partition: &PartitionData) -> Option<Vec<(i64, i64)>> {
    partition.aborted_transactions.as_ref().map(|list| list.iter().map(|a| (a.producer_id.0, a.first_offset)).collect())
}

async fn latest_offset(broker: &Broker, partition: i32, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(isolation_level).with_topics(vec![ListOffsetsTopic::default()
        .with_name(topic_name(TOPIC))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(-1)])]);
    let response: ListOffsetsResponse = call(broker, ApiKey::ListOffsets, 5, &request).await;
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

/// WriteTxnMarkers of one marker per `(partition, commit)`: each
/// partition's error code.
async fn write_markers(broker: &Broker, pid: i64, epoch: i16, coordinator_epoch: i32, markers: &[(i32, bool)]) -> Vec<i16> {
    let request = WriteTxnMarkersRequest::default().with_markers(
        markers
            .iter()
            .map(|&(partition, commit)| {
                WritableTxnMarker::default()
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_transaction_result(commit)
                    .with_coordinator_epoch(coordinator_epoch)
                    .with_topics(vec![WritableTxnMarkerTopic::default().with_name(topic_name(TOPIC)).with_partition_indexes(vec![partition])])
            })
            .collect(),
    );
    let response: WriteTxnMarkersResponse = call(broker, ApiKey::WriteTxnMarkers, 1, &request).await;
    assert_eq!(response.markers.len(), markers.len());
    response.markers.iter().map(|m| m.topics[0].partitions[0].error_code).collect()
}

/// What a consumer sees of both partitions after the commit (partition 0)
/// and the abort (partition 1); the same before and after a restart.
async fn check_ended(broker: &Broker, pid: i64) {
    for partition in [0, 1] {
        assert_eq!(latest_offset(broker, partition, READ_COMMITTED).await, 4, "partition {partition}: nothing open");
        assert_eq!(latest_offset(broker, partition, READ_UNCOMMITTED).await, 4);
    }
    let committed = fetch_isolated(broker, 0, 0, READ_COMMITTED).await;
    assert_eq!((committed.error_code, committed.last_stable_offset, committed.high_watermark), (0, 4, 4));
    assert_eq!(data_values(&committed), vec!["a", "t1", "t2"]);
    assert_eq!(aborted(&committed), Some(vec![]), "the commit aborted nothing");
    let aborting = fetch_isolated(broker, 1, 0, READ_COMMITTED).await;
    assert_eq!(aborting.last_stable_offset, 4);
    assert_eq!(data_values(&aborting), vec!["b", "u1", "u2"], "the records come; the consumer drops the aborted ones");
    assert_eq!(aborted(&aborting), Some(vec![(pid, 1)]), "the aborted transaction of producer {pid} from offset 1");
    // From past the abort marker, nothing aborted overlaps.
    assert_eq!(aborted(&fetch_isolated(broker, 1, 4, READ_COMMITTED).await), Some(vec![]));
    let uncommitted = fetch_isolated(broker, 1, 0, READ_UNCOMMITTED).await;
    assert_eq!(data_values(&uncommitted), vec!["b", "u1", "u2"]);
    assert_eq!(aborted(&uncommitted), None, "read_uncommitted gets no aborted list");
}

#[tokio::test]
async fn markers_end_transactions_and_read_committed_sees_only_decided_records() {
    let dir = std::env::temp_dir().join(format!("dlog-txn-partition-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The partition side alone: batches are produced without a coordinator
    // having added their partitions, so KIP-890's verification is off.
    let config = BrokerConfig { data_dir: dir.clone(), transaction_partition_verification_enable: false, ..BrokerConfig::default() };
    let broker = Broker::open(config, Arc::new(RealDisk), ManualClock::new(1_000)).unwrap();
    assert_eq!(create_topic(&broker, TOPIC, 2).await, 0);
    let init: InitProducerIdResponse = call(&broker, ApiKey::InitProducerId, 1, &InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000)).await;
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    assert!(pid >= 0);

    // A plain record, then a transaction, on each partition.
    assert_eq!(send(&broker, 0, producer_batch(-1, -1, -1, false, &["a"])).await, (0, 0));
    assert_eq!(send(&broker, 1, producer_batch(-1, -1, -1, false, &["b"])).await, (0, 0));
    assert_eq!(send(&broker, 0, producer_batch(pid, epoch, 0, true, &["t1", "t2"])).await, (0, 1));
    assert_eq!(send(&broker, 1, producer_batch(pid, epoch, 0, true, &["u1", "u2"])).await, (0, 1));
    // A plain batch of the producer inside its transaction is refused.
    assert_eq!(send(&broker, 0, producer_batch(pid, epoch, 2, false, &["x"])).await.0, 48, "INVALID_TXN_STATE");
    // Clients may not write markers themselves.
    assert_eq!(send(&broker, 0, build_control_batch(pid, epoch, true, 9, 1_000).into()).await.0, 87, "INVALID_RECORD");

    for partition in [0, 1] {
        let open = fetch_isolated(&broker, partition, 0, READ_COMMITTED).await;
        assert_eq!((open.high_watermark, open.last_stable_offset), (3, 1), "partition {partition}: the open transaction holds the LSO");
        assert_eq!(data_values(&open).len(), 1, "read_committed stops at the LSO");
        let all = fetch_isolated(&broker, partition, 0, READ_UNCOMMITTED).await;
        assert_eq!(all.last_stable_offset, 1, "read_uncommitted fetches carry the LSO too");
        assert_eq!(data_values(&all).len(), 3, "read_uncommitted reads to the high watermark");
        // Past the LSO but within the log: nothing to read yet, no error.
        let waiting = fetch_isolated(&broker, partition, 2, READ_COMMITTED).await;
        assert_eq!((waiting.error_code, data_values(&waiting).len()), (0, 0));
        assert_eq!(latest_offset(&broker, partition, READ_COMMITTED).await, 1);
        assert_eq!(latest_offset(&broker, partition, READ_UNCOMMITTED).await, 3);
    }

    // The coordinator (epoch 1) commits on partition 0 and aborts on 1.
    assert_eq!(write_markers(&broker, pid, epoch, 1, &[(0, true), (1, false)]).await, vec![0, 0]);
    check_ended(&broker, pid).await;
    // A coordinator of an older epoch is fenced; a marker of an unknown
    // partition is refused.
    assert_eq!(write_markers(&broker, pid, epoch, 0, &[(0, false)]).await, vec![52], "TRANSACTION_COORDINATOR_FENCED");
    assert_eq!(write_markers(&broker, pid, epoch, 1, &[(7, false)]).await, vec![3], "UNKNOWN_TOPIC_OR_PARTITION");
    // A new transaction stays open across the restart.
    assert_eq!(send(&broker, 0, producer_batch(pid, epoch, 2, true, &["t3"])).await, (0, 4));
    assert_eq!(latest_offset(&broker, 0, READ_COMMITTED).await, 4);

    // Restarted: the same answers, rebuilt from the log.
    broker.shutdown();
    drop(broker);
    let config = BrokerConfig { data_dir: dir.clone(), transaction_partition_verification_enable: false, ..BrokerConfig::default() };
    let broker = Broker::open(config, Arc::new(RealDisk), ManualClock::new(2_000)).unwrap();
    assert_eq!(latest_offset(&broker, 0, READ_COMMITTED).await, 4, "the open transaction still holds partition 0");
    assert_eq!(latest_offset(&broker, 0, READ_UNCOMMITTED).await, 5);
    assert_eq!(write_markers(&broker, pid, epoch, 0, &[(0, false)]).await, vec![52], "the coordinator epoch came back from the log");
    let aborting = fetch_isolated(&broker, 1, 0, READ_COMMITTED).await;
    assert_eq!(aborted(&aborting), Some(vec![(pid, 1)]));
    assert_eq!(data_values(&aborting), vec!["b", "u1", "u2"]);
    assert_eq!(write_markers(&broker, pid, epoch, 1, &[(0, true)]).await, vec![0]);
    let committed = fetch_isolated(&broker, 0, 0, READ_COMMITTED).await;
    assert_eq!(committed.last_stable_offset, 6);
    assert_eq!(data_values(&committed), vec!["a", "t1", "t2", "t3"]);
    assert_eq!(aborted(&committed), Some(vec![]));
    broker.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The teaching knob: with the aborted-transaction index off,
/// read_committed fetches get no aborted list, so a consumer would deliver
/// the aborted records.
#[tokio::test]
async fn without_the_aborted_index_read_committed_reports_no_aborts() {
    let (broker, dir) = open_broker("txn-partition-knob");
    broker.shutdown();
    drop(broker);
    let config = BrokerConfig { data_dir: dir.clone(), transaction_aborted_index_enable: false, transaction_partition_verification_enable: false, ..BrokerConfig::default() };
    let broker = Broker::open(config, Arc::new(RealDisk), ManualClock::new(1_000)).unwrap();
    assert_eq!(create_topic(&broker, TOPIC, 1).await, 0);
    assert_eq!(send(&broker, 0, producer_batch(5, 0, 0, true, &["u1"])).await, (0, 0));
    assert_eq!(write_markers(&broker, 5, 0, 0, &[(0, false)]).await, vec![0]);
    let fetched = fetch_isolated(&broker, 0, 0, READ_COMMITTED).await;
    assert_eq!(fetched.last_stable_offset, 2);
    assert_eq!(aborted(&fetched), Some(vec![]), "the knob hides the abort");
    assert_eq!(data_values(&fetched), vec!["u1"]);
    broker.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
