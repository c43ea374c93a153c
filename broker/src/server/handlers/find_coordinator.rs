//! FindCoordinator (v0–4): which broker coordinates a group.
//!
//! Standalone, this broker coordinates every group. In cluster mode the
//! coordinator is the leader of the group's `__consumer_offsets` partition,
//! read from the quorum's view; the topic is created through the quorum on
//! first need, with `offsets.topic.replication.factor` capped by the live
//! brokers. While the partition has no leader the answer is
//! COORDINATOR_NOT_AVAILABLE, which clients retry.
//!
//! v0–3 ask for one key (`key`); v4 batches them (`coordinator_keys`,
//! answered in `coordinators`). Key type 1 (transactional id) is answered
//! INVALID_REQUEST: transactions are not implemented (InitProducerId with a
//! transactional id says so too).

use kafka_protocol::messages::{find_coordinator_response::Coordinator, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::error_codes::KafkaErrorCode;
use crate::group::{partition_for_group, GroupError};
use crate::quorum::{ClusterView, ControllerRequest};
use crate::server::groups::OFFSETS_TOPIC;
use crate::server::Broker;

const KEY_TYPE_GROUP: i8 = 0;

/// Where a coordinator is: node id, host, port.
type Location = (i32, String, i32);

/// The leader of `group_id`'s partition in `view`, if it has one.
fn leader_in_view(view: &ClusterView, group_id: &str, partitions: i32) -> Result<Location, GroupError> {
    let topic = view.topics.iter().find(|t| t.name == OFFSETS_TOPIC).ok_or(GroupError::CoordinatorNotAvailable)?;
    let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    // The topic's own partition count decides, should the setting differ.
    let index = partition_for_group(group_id, if count > 0 { count } else { partitions });
    let leader = topic.partitions.get(index as usize).and_then(|p| p.leader).ok_or(GroupError::CoordinatorNotAvailable)?;
    let broker = view.brokers.iter().find(|b| b.broker_id == leader && !b.fenced).ok_or(GroupError::CoordinatorNotAvailable)?;
    let (host, port) = broker.listener.rsplit_once(':').ok_or(GroupError::CoordinatorNotAvailable)?;
    Ok((leader, host.to_string(), port.parse().map_err(|_| GroupError::CoordinatorNotAvailable)?))
}

/// Cluster mode: the quorum's view, with `__consumer_offsets` created in
/// it if it was missing.
async fn view_with_offsets_topic(broker: &Broker, link: &crate::server::cluster::ClusterLink) -> Result<ClusterView, GroupError> {
    let view = link.describe().await.map_err(|_| GroupError::CoordinatorNotAvailable)?;
    if view.topics.iter().any(|t| t.name == OFFSETS_TOPIC) {
        return Ok(view);
    }
    let live = view.brokers.iter().filter(|b| !b.fenced).count().max(1);
    let replication_factor = usize::try_from(broker.config.offsets_topic_replication_factor).unwrap_or(1).clamp(1, live);
    let create = ControllerRequest::CreateTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: broker.config.offsets_topic_num_partitions.max(1) as u32,
        replication_factor: replication_factor as u16,
        configs: [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect(),
    };
    if let Err(error) = link.call(&create).await {
        // Another broker may have created it first; the read below decides.
        tracing::debug!(%error, "creating {OFFSETS_TOPIC} through the quorum failed");
    }
    link.describe().await.map_err(|_| GroupError::CoordinatorNotAvailable)
}

async fn locate(broker: &Broker, keys: &[String]) -> Vec<Result<Location, GroupError>> {
    match &broker.cluster {
        None => {
            let here = broker.with_group_coordinator(None, |_, _| ()).map(|()| {
                let config = &broker.config;
                (config.node_id, config.advertised_host.clone(), i32::from(config.advertised_port))
            });
            keys.iter().map(|_| here.clone()).collect()
        }
        Some(link) => match view_with_offsets_topic(broker, link).await {
            Ok(view) => {
                broker.reconcile_topics(&view);
                keys.iter().map(|key| leader_in_view(&view, key, broker.config.offsets_topic_num_partitions)).collect()
            }
            Err(error) => keys.iter().map(|_| Err(error)).collect(),
        },
    }
}

pub(super) async fn find_coordinator(broker: &Broker, header: &RequestHeader, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let batched = header.request_api_version >= 4;
    let keys: Vec<String> = if batched {
        request.coordinator_keys.iter().map(|k| k.as_str().to_string()).collect()
    } else {
        vec![request.key.as_str().to_string()]
    };
    let located = if request.key_type != KEY_TYPE_GROUP {
        Vec::new()
    } else {
        locate(broker, &keys).await
    };
    let answer = |key: &str, index: usize| -> Coordinator {
        let coordinator = Coordinator::default().with_key(StrBytes::from_string(key.to_string()));
        match located.get(index) {
            None => coordinator
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_static_str("only group coordinators exist: transactions are not implemented"))),
            Some(Ok((node_id, host, port))) => coordinator.with_node_id(BrokerId(*node_id)).with_host(StrBytes::from_string(host.clone())).with_port(*port),
            Some(Err(error)) => coordinator
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(error.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(error.to_string()))),
        }
    };
    let coordinators: Vec<Coordinator> = keys.iter().enumerate().map(|(i, key)| answer(key, i)).collect();
    if batched {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let only = coordinators.into_iter().next().unwrap_or_default();
    let response = FindCoordinatorResponse::default()
        .with_error_code(only.error_code)
        .with_node_id(only.node_id)
        .with_host(only.host)
        .with_port(only.port);
    if header.request_api_version >= 1 {
        response.with_error_message(only.error_message)
    } else {
        response
    }
}
