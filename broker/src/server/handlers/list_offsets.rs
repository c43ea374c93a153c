//! ListOffsets: earliest, latest, by timestamp, and max timestamp (v7+).
//! The latest offset is the high watermark for read_uncommitted and the
//! last stable offset for read_committed (isolation level 1, v2+).

use crate::error_codes::KafkaErrorCode;

use kafka_protocol::messages::{
    list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
    ListOffsetsRequest, ListOffsetsResponse,
};
use kafka_protocol::ResponseError;

use super::READ_COMMITTED;
use crate::server::Broker;

/// ListOffsets timestamp meaning "the latest offset".
const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets timestamp meaning "the record with the largest timestamp" (v7+).
const MAX_TIMESTAMP: i64 = -3;
/// ListOffsets timestamp meaning "the earliest offset".
const EARLIEST_TIMESTAMP: i64 = -2;

pub(super) fn list_offsets(broker: &Broker, version: i16, request: ListOffsetsRequest) -> ListOffsetsResponse {
    // The leader epoch field exists from v4 on; before that it must stay unset.
    let leader_epoch = if version >= 4 { 0 } else { -1 };
    let read_committed = version >= 2 && request.isolation_level == READ_COMMITTED;
    let topics = request
        .topics
        .into_iter()
        .map(|list_topic| {
            let topic_name = list_topic.name.0.as_str().to_string();
            let partitions = list_topic
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(leader_epoch);
                    let partition = match broker.partition(&topic_name, p.partition_index) {
                        Ok(partition) => partition,
                        Err(code) => return response.with_error_code(code),
                    };
                    let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
                    let current_leader_epoch = (version >= 4 && p.current_leader_epoch >= 0).then_some(p.current_leader_epoch);
                    if let Err(error) = partition.check_leader(current_leader_epoch) {
                        return response.with_error_code(error.kafka_error_code());
                    }
                    let response = match partition.leader_epoch() {
                        Some(epoch) if version >= 4 => response.with_leader_epoch(epoch),
                        _ => response,
                    };
                    if p.timestamp == LATEST_TIMESTAMP && read_committed {
                        // Only decided records: no open transaction below.
                        return match partition.last_stable_offset() {
                            Ok(offset) => response.with_offset(offset),
                            Err(error) => response.with_error_code(error.kafka_error_code()),
                        };
                    }
                    let log = &partition.log;
                    match p.timestamp {
                        // Consumers see only committed records: the latest
                        // offset is the high watermark.
                        LATEST_TIMESTAMP => response.with_offset(partition.high_watermark()),
                        EARLIEST_TIMESTAMP => response.with_offset(log.log_start_offset()),
                        // The batch holding the largest timestamp (KIP-734),
                        // asked for from v7 on (Kafka refuses it below).
                        MAX_TIMESTAMP if version < 7 => response.with_error_code(ResponseError::UnsupportedVersion.code()),
                        timestamp if timestamp >= 0 || timestamp == MAX_TIMESTAMP => match log.offset_for_timestamp(timestamp) {
                            Ok(Some(found)) => response.with_offset(found.offset).with_timestamp(found.timestamp_ms),
                            Ok(None) => response,
                            Err(error) => response.with_error_code(error.kafka_error_code()),
                        },
                        _ => response.with_error_code(ResponseError::InvalidRequest.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(list_topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
