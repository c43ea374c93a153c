//! ConsumerGroupHeartbeat (v0–1) and ConsumerGroupDescribe (v0–1), the
//! KIP-848 consumer group APIs: decode, translate topic ids to names (the
//! core works by name), hand the core every topic's partition count, call
//! it, encode. The state machine is `group::consumer_protocol`.
//!
//! Version notes: ConsumerGroupHeartbeat v1 adds a subscription regex
//! (matched in full against topic names, internal topics excluded) and
//! expects clients to pick their member id (KIP-1082); an empty one is
//! still given a fresh id, as at v0. ConsumerGroupDescribe v1 adds each
//! member's type (consumer protocol: 1).
//!
//! Topic ids are the UUIDs Metadata v10+ reports
//! ([`kafka_topic_uuid`]); an owned partition of a topic id this broker
//! does not know is dropped from the member's report (the topic is gone).

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    consumer_group_describe_response::{Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember, TopicPartitions as DescribedTopicPartitions},
    consumer_group_heartbeat_response::{Assignment, TopicPartitions},
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::error_codes::KafkaErrorCode;
use crate::group::consumer_protocol::{self, ConsumerHeartbeat, TopicCounts};
use crate::server::topics::kafka_topic_uuid;
use crate::server::Broker;

/// ConsumerGroupDescribe v1 `member_type` of a member speaking the consumer protocol.
const CONSUMER_MEMBER: i8 = 1;

/// Authorized operations of a group with no authorizer: READ, DELETE, DESCRIBE.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn text(value: &StrBytes) -> String {
    value.as_str().to_string()
}

/// Every topic's name ↔ id, and partition count.
struct TopicIds {
    by_id: BTreeMap<uuid::Uuid, String>,
    by_name: BTreeMap<String, uuid::Uuid>,
    counts: TopicCounts,
}

/// Cluster mode: the topics of the broker's latest view of the quorum
/// (the coordinator need not host a topic its group subscribes to);
/// standalone, or before any view: the broker's own topics.
fn topic_ids(broker: &Broker) -> TopicIds {
    let mut ids = TopicIds { by_id: BTreeMap::new(), by_name: BTreeMap::new(), counts: TopicCounts::new() };
    let mut add = |name: &str, id: uuid::Uuid, partitions: i32| {
        ids.by_id.insert(id, name.to_string());
        ids.by_name.insert(name.to_string(), id);
        ids.counts.insert(name.to_string(), partitions);
    };
    match broker.cluster.as_ref().and_then(|link| link.cached_view()) {
        Some(view) => {
            for topic in &view.topics {
                add(&topic.name, kafka_topic_uuid(&topic.name, Some(topic.topic_id)), topic.partitions.len() as i32);
            }
        }
        None => {
            for topic in broker.topics_snapshot() {
                add(&topic.name, kafka_topic_uuid(&topic.name, topic.topic_id), topic.meta.partitions);
            }
        }
    }
    ids
}

/// Partitions by topic id, as both APIs' assignments carry them.
fn by_topic(ids: &TopicIds, assignment: &consumer_protocol::Assignment) -> Vec<(uuid::Uuid, String, Vec<i32>)> {
    let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in assignment {
        grouped.entry(topic.as_str()).or_default().push(*partition);
    }
    grouped
        .into_iter()
        .filter_map(|(topic, partitions)| ids.by_name.get(topic).map(|id| (*id, topic.to_string(), partitions)))
        .collect()
}

pub(super) async fn consumer_group_heartbeat(broker: &Broker, header: &RequestHeader, request: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    let ids = topic_ids(broker);
    let group_id = text(&request.group_id.0);
    let owned = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .filter_map(|t| ids.by_id.get(&t.topic_id).map(|name| t.partitions.iter().map(move |&p| (name.clone(), p))))
            .flatten()
            .collect()
    });
    let heartbeat = ConsumerHeartbeat {
        group_id: group_id.clone(),
        member_id: text(&request.member_id),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(text),
        rack_id: request.rack_id.as_ref().map(text),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request.subscribed_topic_names.as_ref().map(|names| names.iter().map(|n| text(&n.0)).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.as_ref().map(text),
        server_assignor: request.server_assignor.as_ref().map(text),
        owned,
        client_id: header.client_id.as_ref().map(text).unwrap_or_default(),
        client_host: String::new(),
    };
    let result = broker.with_group_coordinator(Some(&group_id), |core, now_ms| core.consumer_heartbeat(now_ms, heartbeat, &ids.counts)).and_then(|r| r);
    match result {
        Err(error) => {
            tracing::debug!(group = %group_id, %error, "ConsumerGroupHeartbeat refused");
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(error.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(error.to_string())))
                .with_member_epoch(-1)
        }
        Ok(response) => {
            let assignment = response.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    by_topic(&ids, &a).into_iter().map(|(id, _, partitions)| TopicPartitions::default().with_topic_id(id).with_partitions(partitions)).collect(),
                )
            });
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(StrBytes::from_string(response.member_id)))
                .with_member_epoch(response.member_epoch)
                .with_heartbeat_interval_ms(response.heartbeat_interval_ms)
                .with_assignment(assignment)
        }
    }
}

pub(super) fn consumer_group_describe(broker: &Broker, header: &RequestHeader, request: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let version = header.request_api_version;
    let ids = topic_ids(broker);
    let assignment = |a: &consumer_protocol::Assignment| {
        DescribedAssignment::default().with_topic_partitions(
            by_topic(&ids, a)
                .into_iter()
                .map(|(id, name, partitions)| DescribedTopicPartitions::default().with_topic_id(id).with_topic_name(TopicName(StrBytes::from_string(name))).with_partitions(partitions))
                .collect(),
        )
    };
    let operations = if request.include_authorized_operations { GROUP_OPERATIONS } else { i32::MIN };
    let groups = request
        .group_ids
        .iter()
        .map(|group_id| {
            let id = text(&group_id.0);
            let answer = DescribedGroup::default().with_group_id(GroupId(group_id.0.clone())).with_authorized_operations(operations);
            match broker.with_group_coordinator(Some(&id), |core, _| core.consumer_describe(&id)).and_then(|r| r) {
                Err(error) => answer.with_error_code(error.kafka_error_code()).with_error_message(Some(StrBytes::from_string(error.to_string()))),
                Ok(group) => answer
                    .with_group_state(StrBytes::from_static_str(group.state.name()))
                    .with_group_epoch(group.group_epoch)
                    .with_assignment_epoch(group.assignment_epoch)
                    .with_assignor_name(StrBytes::from_string(group.assignor_name))
                    .with_members(
                        group
                            .members
                            .iter()
                            .map(|m| {
                                DescribedMember::default()
                                    .with_member_id(StrBytes::from_string(m.member_id.clone()))
                                    .with_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                                    .with_rack_id(m.rack_id.clone().map(StrBytes::from_string))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(StrBytes::from_string(m.client_id.clone()))
                                    .with_client_host(StrBytes::from_string(m.client_host.clone()))
                                    .with_subscribed_topic_names(m.subscribed_topic_names.iter().map(|n| TopicName(StrBytes::from_string(n.clone()))).collect())
                                    .with_subscribed_topic_regex(m.subscribed_topic_regex.clone().map(StrBytes::from_string))
                                    .with_member_type(if version >= 1 { CONSUMER_MEMBER } else { -1 })
                                    .with_assignment(assignment(&m.assignment))
                                    .with_target_assignment(assignment(&m.target_assignment))
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
