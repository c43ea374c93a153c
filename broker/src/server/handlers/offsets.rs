//! OffsetCommit (v2–8), OffsetFetch (v1–8) and OffsetDelete (v0): a
//! group's committed offsets.
//!
//! A commit is validated by the core (its generation, member and state),
//! appended to the group's `__consumer_offsets` partition, and answered
//! once durable: in cluster mode when the high watermark passes it. Only
//! then does OffsetFetch return it. If the append fails, every accepted
//! partition of the request gets the append's error (NOT_COORDINATOR or
//! COORDINATOR_NOT_AVAILABLE) and the client retries.
//!
//! OffsetFetch: v1–7 ask for one group (v2+ may ask for all its partitions
//! with a null topic list, and carry a top-level error code); v8 asks for
//! several groups at once. A requested partition without a committed
//! offset is answered offset -1, as in Kafka. `require_stable` (v7+): a
//! partition with transactional offsets still pending (TxnOffsetCommit
//! whose transaction has no marker yet) is answered offset -1 with
//! UNSTABLE_OFFSET_COMMIT, and the client retries; without it, the last
//! committed offset is returned as if the transaction did not exist.

use kafka_protocol::messages::{
    offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
    offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic},
    offset_fetch_response::{OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics},
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::error_codes::KafkaErrorCode;
use crate::group::{CommitRequest, CommittedOffset, GroupError, TopicPartition};
use kafka_protocol::ResponseError;
use crate::server::Broker;

fn text(value: &StrBytes) -> String {
    value.as_str().to_string()
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Groups per-partition answers by topic, in request order.
fn by_topic<T>(answers: Vec<(TopicPartition, T)>) -> Vec<(String, Vec<(i32, T)>)> {
    let mut topics: Vec<(String, Vec<(i32, T)>)> = Vec::new();
    for ((topic, partition), answer) in answers {
        match topics.last_mut() {
            Some((name, partitions)) if *name == topic => partitions.push((partition, answer)),
            _ => topics.push((topic, vec![(partition, answer)])),
        }
    }
    topics
}

/// Validates, appends and applies a commit; the answer per partition.
async fn commit(broker: &Broker, request: CommitRequest) -> Vec<(TopicPartition, Result<(), GroupError>)> {
    let group_id = request.group_id.clone();
    let requested: Vec<TopicPartition> = request.offsets.iter().map(|(tp, _)| tp.clone()).collect();
    let prepared = broker.with_group_coordinator(Some(&group_id), |core, now_ms| {
        let plan = core.prepare_commit(now_ms, request);
        let appended = broker.append_offsets_records(core.partition_of(&group_id), &plan.records, true);
        match appended {
            // Durable already (standalone): visible at once, in append order.
            Ok(None) => {
                let results = plan.results.clone();
                core.commit_appended(plan);
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
            Ok(()) => broker.with_group_coordinator(None, |core, _| core.commit_appended(plan)),
            Err(error) => Err(error),
        },
    };
    results.into_iter().map(|(tp, result)| (tp, result.and(appended))).collect()
}

pub(super) async fn offset_commit(broker: &Broker, header: &RequestHeader, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let offsets: Vec<(TopicPartition, CommittedOffset)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            let name = text(&topic.name.0);
            topic.partitions.iter().map(move |p| {
                (
                    (name.clone(), p.partition_index),
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(text).unwrap_or_default(),
                        commit_timestamp_ms: -1,
                    },
                )
            })
        })
        .collect();
    let commit_request = CommitRequest {
        group_id: text(&request.group_id.0),
        generation_id: request.generation_id_or_member_epoch,
        member_id: text(&request.member_id),
        group_instance_id: request.group_instance_id.as_ref().map(text),
        member_epoch: header.request_api_version >= 9,
        offsets,
    };
    let topics = by_topic(commit(broker, commit_request).await)
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default().with_name(topic_name(&name)).with_partitions(
                partitions
                    .into_iter()
                    .map(|(index, result)| OffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(result.err().map_or(0, |e| e.kafka_error_code())))
                    .collect(),
            )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's committed offsets: the requested partitions (all when
/// `None`), each with its offset or -1 and its error code (with
/// `require_stable`, UNSTABLE_OFFSET_COMMIT for a partition whose
/// transactional offsets are pending).
fn fetch_group(broker: &Broker, group_id: &str, member: Option<(&str, i32)>, requested: Option<Vec<TopicPartition>>, require_stable: bool) -> Result<Vec<(TopicPartition, Option<CommittedOffset>, i16)>, GroupError> {
    let (committed, unstable) = broker
        .with_group_coordinator(Some(group_id), |core, _| {
            // v9: a KIP-848 member's fetch carries its epoch.
            core.check_fetch_member(group_id, member.map(|m| m.0), member.map_or(-1, |m| m.1))?;
            let unstable = if require_stable { core.unstable_partitions(group_id) } else { Default::default() };
            Ok::<_, GroupError>((core.fetch_offsets(group_id, requested.as_deref())?, unstable))
        })
        .and_then(|r| r)?;
    let answer = |tp: TopicPartition, offset: Option<CommittedOffset>| {
        if unstable.contains(&tp) {
            (tp, None, ResponseError::UnstableOffsetCommit.code())
        } else {
            (tp, offset, 0)
        }
    };
    Ok(match requested {
        Some(list) => list.into_iter().map(|tp| {
            let offset = committed.get(&tp).cloned();
            answer(tp, offset)
        }).collect(),
        None => {
            let mut all: std::collections::BTreeMap<TopicPartition, Option<CommittedOffset>> = committed.into_iter().map(|(tp, o)| (tp, Some(o))).collect();
            for tp in &unstable {
                all.entry(tp.clone()).or_insert(None);
            }
            all.into_iter().map(|(tp, offset)| answer(tp, offset)).collect()
        }
    })
}

pub(super) fn offset_fetch(broker: &Broker, header: &RequestHeader, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let version = header.request_api_version;
    if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|group| {
                let group_id = text(&group.group_id.0);
                let requested = group
                    .topics
                    .as_ref()
                    .map(|topics| topics.iter().flat_map(|t| t.partition_indexes.iter().map(move |&p| (text(&t.name.0), p))).collect());
                let answer = OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
                let member = group.member_id.as_ref().map(|id| (id.as_str(), group.member_epoch));
                match fetch_group(broker, &group_id, member, requested, request.require_stable) {
                    Err(error) => answer.with_error_code(error.kafka_error_code()),
                    Ok(offsets) => answer.with_topics(
                        by_topic(offsets.into_iter().map(|(tp, offset, code)| (tp, (offset, code))).collect())
                            .into_iter()
                            .map(|(name, partitions)| {
                                OffsetFetchResponseTopics::default().with_name(topic_name(&name)).with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(index, (offset, code))| {
                                            let offset = offset.unwrap_or(CommittedOffset { offset: -1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: -1 });
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(index)
                                                .with_committed_offset(offset.offset)
                                                .with_committed_leader_epoch(offset.leader_epoch)
                                                .with_metadata(Some(StrBytes::from_string(offset.metadata)))
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                )
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group_id = text(&request.group_id.0);
    let requested: Option<Vec<TopicPartition>> = request
        .topics
        .as_ref()
        .map(|topics| topics.iter().flat_map(|t| t.partition_indexes.iter().map(move |&p| (text(&t.name.0), p))).collect());
    let partition = |index: i32, offset: Option<CommittedOffset>, code: i16| {
        let offset = offset.unwrap_or(CommittedOffset { offset: -1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: -1 });
        OffsetFetchResponsePartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset.offset)
            .with_committed_leader_epoch(offset.leader_epoch)
            .with_metadata(Some(StrBytes::from_string(offset.metadata)))
            .with_error_code(code)
    };
    let topics_of = |answers: Vec<(TopicPartition, (Option<CommittedOffset>, i16))>| -> Vec<OffsetFetchResponseTopic> {
        by_topic(answers)
            .into_iter()
            .map(|(name, partitions)| OffsetFetchResponseTopic::default().with_name(topic_name(&name)).with_partitions(partitions.into_iter().map(|(i, (o, code))| partition(i, o, code)).collect()))
            .collect()
    };
    let require_stable = version >= 7 && request.require_stable;
    match fetch_group(broker, &group_id, None, requested.clone(), require_stable) {
        Ok(offsets) => OffsetFetchResponse::default().with_topics(topics_of(offsets.into_iter().map(|(tp, offset, code)| (tp, (offset, code))).collect())),
        Err(error) => {
            // v1 has no top-level code: each partition carries the error.
            let code = error.kafka_error_code();
            let response = OffsetFetchResponse::default();
            if version >= 2 {
                response.with_error_code(code)
            } else {
                let answers = requested.unwrap_or_default().into_iter().map(|tp| (tp, (None, code))).collect();
                response.with_topics(topics_of(answers))
            }
        }
    }
}

pub(super) async fn offset_delete(broker: &Broker, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = text(&request.group_id.0);
    let partitions: Vec<TopicPartition> = request.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (text(&t.name.0), p.partition_index))).collect();
    let appended = broker
        .with_group_coordinator(Some(&group_id), |core, _| {
            let records = core.delete_offsets(&group_id, &partitions)?;
            broker.append_offsets_records(core.partition_of(&group_id), &records, true)
        })
        .and_then(|r| r);
    let result = match appended {
        Ok(wait) => Broker::await_replication(wait).await,
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        return OffsetDeleteResponse::default().with_error_code(error.kafka_error_code());
    }
    let topics = by_topic(partitions.into_iter().map(|tp| (tp, ())).collect())
        .into_iter()
        .map(|(name, parts)| {
            OffsetDeleteResponseTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(parts.into_iter().map(|(index, ())| OffsetDeleteResponsePartition::default().with_partition_index(index)).collect())
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
