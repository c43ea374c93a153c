//! Fetch: consumers read up to the high watermark (read_uncommitted) or
//! the last stable offset (read_committed), followers up to the log end;
//! all long-poll until data arrives or `max_wait_ms` passes.
//!
//! Every response carries the partition's last stable offset: below it no
//! transaction is open. A read_committed fetch also gets the aborted
//! transactions that overlap what it returns (Kafka's rule: the
//! transaction's abort marker is at or after the fetch offset and its
//! first offset is before the end of the returned data); the consumer
//! drops those producers' records from each aborted transaction's first
//! offset up to its marker. With the teaching knob
//! `transaction.aborted.index.enable=false` that list is always empty, so
//! read_committed consumers deliver aborted records.

use crate::error_codes::KafkaErrorCode;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    fetch_request::FetchPartition,
    fetch_response::{AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData},
    FetchRequest, FetchResponse,
};
use kafka_protocol::messages::ProducerId;
use kafka_protocol::ResponseError;

use super::READ_COMMITTED;
use crate::replication::{FetchAnswer, FollowerFetch};
use crate::server::Broker;
use crate::storage::PartitionLog;

/// Reads one partition for a consumer (`replica_id < 0`): up to the high
/// watermark, or the last stable offset if `read_committed`, from the
/// leader only.
fn read_for_consumer(
    broker: &Broker,
    topic_name: &str,
    fetch_partition: &FetchPartition,
    version: i16,
    read_committed: bool,
    data: PartitionData,
    bytes_left: &mut usize,
) -> PartitionData {
    let partition = match broker.partition(topic_name, fetch_partition.partition) {
        Ok(partition) => partition,
        Err(code) => return data.with_error_code(code),
    };
    let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
    let current_leader_epoch = (version >= 9 && fetch_partition.current_leader_epoch >= 0).then_some(fetch_partition.current_leader_epoch);
    if let Err(error) = partition.check_leader(current_leader_epoch) {
        return data.with_error_code(error.kafka_error_code());
    }
    let high_watermark = partition.high_watermark();
    let last_stable_offset = match partition.last_stable_offset() {
        Ok(offset) => offset,
        Err(error) => return data.with_error_code(error.kafka_error_code()),
    };
    debug_assert!(last_stable_offset <= high_watermark);
    let log_start = partition.log.log_start_offset();
    let data = data
        .with_high_watermark(high_watermark)
        .with_last_stable_offset(last_stable_offset)
        .with_log_start_offset(log_start);
    let upper_offset = if read_committed { last_stable_offset } else { high_watermark };
    // A new leader's high watermark may trail what its predecessor showed
    // (it learns it from the followers' next fetches), and a read_committed
    // consumer may be past an open transaction's start: an offset up to the
    // log end is valid, it just has nothing decided to read yet.
    if fetch_partition.fetch_offset > upper_offset && fetch_partition.fetch_offset <= partition.log.log_end_offset() {
        return data.with_records(Some(Bytes::new()));
    }
    let (data, end_offset) = read_range(&partition.log, fetch_partition, data, upper_offset, bytes_left);
    if !read_committed || end_offset <= fetch_partition.fetch_offset {
        return data;
    }
    if !broker.config.transaction_aborted_index_enable {
        // Teaching knob: consumers cannot tell aborted records apart.
        return data;
    }
    match partition.aborted_transactions(fetch_partition.fetch_offset, end_offset) {
        Ok(aborted) => data.with_aborted_transactions(Some(
            aborted
                .iter()
                .map(|txn| AbortedTransaction::default().with_producer_id(ProducerId(txn.producer_id)).with_first_offset(txn.first_offset))
                .collect(),
        )),
        Err(error) => data.with_error_code(error.kafka_error_code()).with_records(None),
    }
}

/// Reads one partition for a follower (`replica_id >= 0`): the leader's
/// core records the follower's progress and answers records up to the log
/// end, or the epoch at which the follower's log diverges.
fn read_for_follower(
    broker: &Broker,
    topic_name: &str,
    fetch_partition: &FetchPartition,
    replica_id: i32,
    data: PartitionData,
    bytes_left: &mut usize,
) -> PartitionData {
    let partition = match broker.partition(topic_name, fetch_partition.partition) {
        Ok(partition) => partition,
        Err(code) => return data.with_error_code(code),
    };
    let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
    let fetch = FollowerFetch {
        replica_id,
        fetch_offset: fetch_partition.fetch_offset,
        last_fetched_epoch: (fetch_partition.last_fetched_epoch >= 0).then_some(fetch_partition.last_fetched_epoch),
        current_leader_epoch: (fetch_partition.current_leader_epoch >= 0).then_some(fetch_partition.current_leader_epoch),
    };
    let answer = partition.on_follower_fetch(&fetch, broker.now_ms());
    let effects = partition.take_effects();
    // Followers do not use it, but every response carries it.
    let last_stable_offset = partition.last_stable_offset().ok();
    let data = match answer {
        Err(error) => data.with_error_code(error.kafka_error_code()),
        Ok(FetchAnswer::Diverging { diverging_epoch, high_watermark }) => data
            .with_high_watermark(high_watermark)
            .with_last_stable_offset(last_stable_offset.unwrap_or(high_watermark).min(high_watermark))
            .with_log_start_offset(partition.log.log_start_offset())
            .with_diverging_epoch(EpochEndOffset::default().with_epoch(diverging_epoch.epoch).with_end_offset(diverging_epoch.end_offset))
            .with_records(Some(Bytes::new())),
        Ok(FetchAnswer::Records { log_end_offset, high_watermark, .. }) => {
            let log = &partition.log;
            let data = data
                .with_high_watermark(high_watermark)
                .with_last_stable_offset(last_stable_offset.unwrap_or(high_watermark).min(high_watermark))
                .with_log_start_offset(log.log_start_offset());
            read_range(log, fetch_partition, data, log_end_offset, bytes_left).0
        }
    };
    drop(partition);
    broker.dispatch_effects(topic_name, fetch_partition.partition, effects);
    data
}

/// Reads `[fetch_offset, upper_offset)` of `log` into `data`, within the
/// partition's and the response's byte limits. Also returns the offset
/// after the last batch returned (the fetch offset if none was).
fn read_range(log: &PartitionLog, fetch_partition: &FetchPartition, data: PartitionData, upper_offset: i64, bytes_left: &mut usize) -> (PartitionData, i64) {
    let offset = fetch_partition.fetch_offset;
    if offset < log.log_start_offset() || offset > upper_offset {
        return (data.with_error_code(ResponseError::OffsetOutOfRange.code()), offset);
    }
    if offset == upper_offset || *bytes_left == 0 {
        return (data.with_records(Some(Bytes::new())), offset);
    }
    let max_bytes = (fetch_partition.partition_max_bytes.max(0) as usize).min(*bytes_left);
    match log.read_bounded(offset, max_bytes.max(1), upper_offset) {
        Ok(read) => {
            *bytes_left = bytes_left.saturating_sub(read.records.len());
            (data.with_records(Some(read.records)), read.next_offset)
        }
        Err(error) => {
            tracing::debug!(%error, "read failed");
            (data.with_error_code(error.kafka_error_code()), offset)
        }
    }
}

/// Reads what a fetch asks for, without waiting; returns the response and
/// how many record bytes it carries.
fn fetch_once(broker: &Broker, version: i16, request: &FetchRequest) -> (FetchResponse, usize) {
    let bytes_max = (request.max_bytes.max(0) as usize).min(broker.config.fetch_response_bytes_max);
    let mut bytes_left = bytes_max;
    let read_committed = request.isolation_level == READ_COMMITTED;
    let replica_id = request.replica_id.0;
    let responses = request
        .topics
        .iter()
        .map(|fetch_topic| {
            let topic_name = fetch_topic.topic.0.as_str();
            let partitions = fetch_topic
                .partitions
                .iter()
                .map(|fetch_partition| {
                    let data = PartitionData::default()
                        .with_partition_index(fetch_partition.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_aborted_transactions(read_committed.then(Vec::new));
                    if replica_id >= 0 {
                        read_for_follower(broker, topic_name, fetch_partition, replica_id, data, &mut bytes_left)
                    } else {
                        read_for_consumer(broker, topic_name, fetch_partition, version, read_committed, data, &mut bytes_left)
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(fetch_topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    (FetchResponse::default().with_responses(responses), bytes_max - bytes_left)
}

pub(super) async fn fetch(broker: &Broker, version: i16, request: FetchRequest) -> FetchResponse {
    let wait_ms = (request.max_wait_ms.max(0) as u64).min(broker.config.fetch_wait_ms_max);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let min_bytes = request.min_bytes.max(1) as usize;
    loop {
        // Register for the wake-up before reading, so an append between the
        // read and the wait is not missed.
        let appended = broker.appended.notified();
        let (response, total_bytes) = fetch_once(broker, version, &request);
        let now = tokio::time::Instant::now();
        let has_error = response.responses.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0);
        if total_bytes >= min_bytes || has_error || now >= deadline {
            return response;
        }
        let _ = tokio::time::timeout(deadline - now, appended).await;
    }
}
