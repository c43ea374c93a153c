//! WriteTxnMarkers: a transaction coordinator ends a transaction on the
//! partitions it touched. For each marker and each of its partitions this
//! broker must lead: it appends a control batch (commit or abort, with the
//! coordinator's epoch) through the partition's produce path, then answers
//! once the marker is durable (in cluster mode: the high watermark passed
//! it, as for an acks=all produce; standalone: once appended). The
//! transaction coordinator sends this request to the partition leaders, or
//! calls [`write_txn_markers`] directly when the leader is itself.
//!
//! Per partition errors: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
//! NOT_ENOUGH_REPLICAS, INVALID_PRODUCER_EPOCH (the marker's producer epoch
//! is older than the partition's), TRANSACTION_COORDINATOR_FENCED (an older
//! coordinator epoch than the last marker of this producer),
//! REQUEST_TIMED_OUT (not replicated in time: the coordinator retries, and
//! a marker written twice is harmless, the second ends nothing).
//!
//! After a marker on a `__consumer_offsets` partition is durable, the group
//! coordinator hears of it ([`Broker::groups_txn_marker_written`]): the
//! transaction's pending offset commits become visible or are dropped.

use std::time::Duration;

use kafka_protocol::messages::{
    write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult},
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::ResponseError;

use crate::error_codes::KafkaErrorCode;
use crate::replication::ProduceOutcome;
use crate::server::groups::OFFSETS_TOPIC;
use crate::server::Broker;

/// How long a marker may wait for replication before the answer is
/// REQUEST_TIMED_OUT (Kafka waits `request.timeout.ms`, 30 s by default).
pub(crate) const MARKER_REPLICATION_TIMEOUT_MS: u64 = 30_000;

/// `error_code` of a partition the marker was written to.
const NO_ERROR: i16 = 0;

/// One partition's answer, or what it still waits for.
enum Pending {
    Done(i16),
    /// Appended; waits for the high watermark to pass it.
    Replicating(tokio::sync::oneshot::Receiver<ProduceOutcome>),
}

/// Appends one marker to one partition; registers a wait for its
/// replication if the partition is replicated.
fn append_marker(broker: &Broker, topic_name: &str, partition_index: i32, producer_id: i64, producer_epoch: i16, commit: bool, coordinator_epoch: i32) -> Pending {
    let partition = match broker.partition(topic_name, partition_index) {
        Ok(partition) => partition,
        Err(code) => return Pending::Done(code),
    };
    let min_insync_replicas = broker.topic(topic_name).map_or(broker.config.min_insync_replicas, |t| t.min_insync_replicas(&broker.config));
    let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
    let info = match partition.append_marker_as_leader(producer_id, producer_epoch, commit, coordinator_epoch, Some(min_insync_replicas)) {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, topic_name, partition_index, producer_id, "marker refused");
            return Pending::Done(error.kafka_error_code());
        }
    };
    broker.appended.notify_waiters();
    let mut outcome = Pending::Done(NO_ERROR);
    if partition.is_replicated() {
        let (request_id, receiver) = broker.replication.register_produce();
        let deadline_ms = broker.now_ms().saturating_add(MARKER_REPLICATION_TIMEOUT_MS);
        match partition.wait_for_replication(request_id, info.last_offset + 1, min_insync_replicas, deadline_ms) {
            Ok(()) => outcome = Pending::Replicating(receiver),
            Err(error) => {
                broker.replication.forget_produce(request_id);
                outcome = Pending::Done(error.kafka_error_code());
            }
        }
    }
    let effects = partition.take_effects();
    drop(partition);
    broker.dispatch_effects(topic_name, partition_index, effects);
    outcome
}

/// Answers a WriteTxnMarkers request (v1; see the module docs).
pub(crate) async fn write_txn_markers(broker: &Broker, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    // Every partition of every marker is appended before any wait, so they
    // replicate in parallel.
    let mut appended = Vec::with_capacity(request.markers.len());
    for marker in &request.markers {
        let producer_id = marker.producer_id.0;
        let commit = marker.transaction_result;
        let topics: Vec<_> = marker
            .topics
            .iter()
            .map(|topic| {
                let name = topic.name.0.as_str();
                let partitions: Vec<(i32, Pending)> = topic
                    .partition_indexes
                    .iter()
                    .map(|&index| (index, append_marker(broker, name, index, producer_id, marker.producer_epoch, commit, marker.coordinator_epoch)))
                    .collect();
                (topic.name.clone(), partitions)
            })
            .collect();
        appended.push((marker.producer_id, commit, topics));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(MARKER_REPLICATION_TIMEOUT_MS);
    let mut markers = Vec::with_capacity(appended.len());
    for (producer_id, commit, topics) in appended {
        let mut topic_results = Vec::with_capacity(topics.len());
        for (name, partitions) in topics {
            let mut partition_results = Vec::with_capacity(partitions.len());
            for (index, pending) in partitions {
                let error_code = match pending {
                    Pending::Done(code) => code,
                    Pending::Replicating(receiver) => match tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), receiver).await {
                        Ok(Ok(Ok(()))) => NO_ERROR,
                        Ok(Ok(Err(error))) => error.kafka_error_code(),
                        // Stopped leading without answering, or too slow:
                        // the coordinator retries.
                        Ok(Err(_)) | Err(_) => ResponseError::RequestTimedOut.code(),
                    },
                };
                if error_code == NO_ERROR && name.0.as_str() == OFFSETS_TOPIC {
                    broker.groups_txn_marker_written(index, producer_id.0, commit);
                }
                partition_results.push(WritableTxnMarkerPartitionResult::default().with_partition_index(index).with_error_code(error_code));
            }
            topic_results.push(WritableTxnMarkerTopicResult::default().with_name(name).with_partitions(partition_results));
        }
        markers.push(WritableTxnMarkerResult::default().with_producer_id(producer_id).with_topics(topic_results));
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
