//! TxnOffsetCommit (v0–3): a transactional producer commits a group's
//! offsets inside its transaction (Kafka's exactly-once read-process-write).
//!
//! The core validates the commit (`group::GroupCoordinator::prepare_txn_commit`:
//! INVALID_GROUP_ID, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
//! INVALID_PRODUCER_EPOCH, and from v3, when the producer speaks for a
//! member, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION;
//! OFFSET_METADATA_TOO_LARGE per partition), the records go to the group's
//! `__consumer_offsets` partition as one transactional batch of the
//! producer, and the answer waits until that batch is durable (in cluster
//! mode, the high watermark passing it). The offsets are then pending: no
//! OffsetFetch returns them until the producer's transaction marker lands
//! on that partition (`Broker::groups_txn_marker_written`).
//!
//! | version | adds |
//! |---------|------|
//! | 0 | transactional id, group, producer id and epoch, offsets with metadata |
//! | 1 | (same fields; the broker may answer COORDINATOR_LOAD_IN_PROGRESS) |
//! | 2 | committed leader epoch per partition |
//! | 3 | generation id, member id, group instance id (KIP-447); flexible encoding |
//!
//! Not checked here: that the group was added to the producer's
//! transaction. The transaction coordinator checks that when it answers
//! AddOffsetsToTxn, before the producer sends this request.

use kafka_protocol::messages::{
    txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic},
    RequestHeader, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::error_codes::KafkaErrorCode;
use crate::group::{CommittedOffset, GroupError, TopicPartition, TxnCommitRequest};
use crate::server::Broker;

fn text(value: &StrBytes) -> String {
    value.as_str().to_string()
}

/// Validates and appends a transactional commit; the answer per partition.
async fn txn_commit(broker: &Broker, request: TxnCommitRequest) -> Vec<(TopicPartition, Result<(), GroupError>)> {
    let group_id = request.group_id.clone();
    let requested: Vec<TopicPartition> = request.offsets.iter().map(|(tp, _)| tp.clone()).collect();
    let prepared = broker.with_group_coordinator(Some(&group_id), |core, now_ms| {
        let plan = core.prepare_txn_commit(now_ms, request);
        let appended = broker.append_txn_offsets_records(core.partition_of(&group_id), &plan.records, plan.producer_id, plan.producer_epoch);
        match appended {
            Ok(None) => {
                let results = plan.results.clone();
                core.txn_commit_appended(plan);
                (results, None, Ok(()))
            }
            Ok(Some(wait)) => (plan.results.clone(), Some((plan, wait)), Ok(())),
            Err(error) => (plan.results, None, Err(error)),
        }
    });
    let (results, waiting, appended) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return requested.into_iter().map(|tp| (tp, Err(error))).collect(),
    };
    let appended = match (appended, waiting) {
        (Err(error), _) => Err(error),
        (Ok(()), None) => Ok(()),
        (Ok(()), Some((plan, wait))) => match Broker::await_replication(Some(wait)).await {
            Ok(()) => broker.with_group_coordinator(None, |core, _| core.txn_commit_appended(plan)),
            Err(error) => Err(error),
        },
    };
    results.into_iter().map(|(tp, result)| (tp, result.and(appended))).collect()
}

pub(super) async fn txn_offset_commit(broker: &Broker, header: &RequestHeader, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let version = header.request_api_version;
    let offsets: Vec<(TopicPartition, CommittedOffset)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            let name = text(&topic.name.0);
            topic.partitions.iter().map(move |p| {
                let offset = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.as_ref().map(text).unwrap_or_default(),
                    commit_timestamp_ms: -1,
                };
                ((name.clone(), p.partition_index), offset)
            })
        })
        .collect();
    // Before v3 the request carries no member: the fields' defaults
    // (generation -1, no member id) mean "no member", as in Kafka.
    let (generation_id, member_id, group_instance_id) =
        if version >= 3 { (request.generation_id, text(&request.member_id), request.group_instance_id.as_ref().map(text)) } else { (-1, String::new(), None) };
    let txn_request = TxnCommitRequest {
        transactional_id: text(&request.transactional_id.0),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        group_id: text(&request.group_id.0),
        generation_id,
        member_id,
        group_instance_id,
        offsets,
    };
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for ((topic, partition), result) in txn_commit(broker, txn_request).await {
        let answer = TxnOffsetCommitResponsePartition::default().with_partition_index(partition).with_error_code(result.err().map_or(0, |e| e.kafka_error_code()));
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.partitions.push(answer),
            _ => topics.push(TxnOffsetCommitResponseTopic::default().with_name(TopicName(StrBytes::from_string(topic))).with_partitions(vec![answer])),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}
