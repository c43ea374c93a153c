//! OffsetForLeaderEpoch (KIP-101, KIP-320): where a leader epoch ends in the
//! leader's log. Consumers ask it after a leader change to detect that the
//! log they read was truncated; followers here learn the same from Fetch's
//! diverging epoch instead. Versions 2+ carry the current leader epoch,
//! checked like Fetch's (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH).

use kafka_protocol::messages::{
    offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult},
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use crate::error_codes::KafkaErrorCode;
use crate::server::Broker;

pub(super) fn offset_for_leader_epoch(broker: &Broker, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.as_str().to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let result = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                    let partition = match broker.partition(&name, p.partition) {
                        Ok(partition) => partition,
                        Err(code) => return result.with_error_code(code),
                    };
                    let partition = partition.lock().unwrap_or_else(|e| e.into_inner());
                    let current_leader_epoch = (p.current_leader_epoch >= 0).then_some(p.current_leader_epoch);
                    if let Err(error) = partition.check_leader(current_leader_epoch) {
                        return result.with_error_code(error.kafka_error_code());
                    }
                    let end = partition.end_offset_for_epoch(p.leader_epoch);
                    result.with_leader_epoch(end.epoch).with_end_offset(end.end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(topic.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
