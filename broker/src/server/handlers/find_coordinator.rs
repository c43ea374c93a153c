//! FindCoordinator (v0–4): which broker coordinates a group (key type 0)
//! or a transactional id (key type 1).
//!
//! Standalone, this broker coordinates every group and transactional id.
//! In cluster mode the coordinator is the leader of the key's partition of
//! `__consumer_offsets` (groups) or `__transaction_state` (transactional
//! ids), read from the quorum's view; the topic is created through the
//! quorum on first need, with `offsets.topic.replication.factor` or
//! `transaction.state.log.replication.factor` capped by the live brokers
//! (and `__transaction_state`'s `min.insync.replicas` =
//! `transaction.state.log.min.isr` capped by that factor). While the
//! partition has no leader the answer is COORDINATOR_NOT_AVAILABLE, which
//! clients retry. Other key types get INVALID_REQUEST.
//!
//! v0–3 ask for one key (`key`); v4 batches them (`coordinator_keys`,
//! answered in `coordinators`).

use kafka_protocol::messages::{find_coordinator_response::Coordinator, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::error_codes::KafkaErrorCode;
use crate::group::{partition_for_group, GroupError};
use crate::quorum::{ClusterView, ControllerRequest};
use crate::server::{Broker, OFFSETS_TOPIC, TXN_STATE_TOPIC};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The internal topic behind a key type, and how to create it.
struct CoordinatorTopic {
    name: &'static str,
    partitions: i32,
    replication_factor: i16,
    /// `min.insync.replicas` wanted (capped by the replication factor).
    min_isr: Option<i16>,
}

fn coordinator_topic(broker: &Broker, key_type: i8) -> Option<CoordinatorTopic> {
    let config = &broker.config;
    match key_type {
        KEY_TYPE_GROUP => Some(CoordinatorTopic {
            name: OFFSETS_TOPIC,
            partitions: config.offsets_topic_num_partitions,
            replication_factor: config.offsets_topic_replication_factor,
            min_isr: None,
        }),
        KEY_TYPE_TRANSACTION => Some(CoordinatorTopic {
            name: TXN_STATE_TOPIC,
            partitions: config.transaction_state_log_num_partitions,
            replication_factor: config.transaction_state_log_replication_factor,
            min_isr: Some(config.transaction_state_log_min_isr),
        }),
        _ => None,
    }
}

/// Where a coordinator is: node id, host, port.
type Location = (i32, String, i32);

/// The leader of `key`'s partition of `topic` in `view`, if it has one
/// (the partition as Kafka chooses it for groups and transactional ids alike).
fn leader_in_view(view: &ClusterView, topic: &str, key: &str, partitions: i32) -> Result<Location, GroupError> {
    let topic = view.topics.iter().find(|t| t.name == topic).ok_or(GroupError::CoordinatorNotAvailable)?;
    let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    // The topic's own partition count decides, should the setting differ.
    let index = partition_for_group(key, if count > 0 { count } else { partitions });
    let leader = topic.partitions.get(index as usize).and_then(|p| p.leader).ok_or(GroupError::CoordinatorNotAvailable)?;
    let broker = view.brokers.iter().find(|b| b.broker_id == leader && !b.fenced).ok_or(GroupError::CoordinatorNotAvailable)?;
    let (host, port) = broker.listener.rsplit_once(':').ok_or(GroupError::CoordinatorNotAvailable)?;
    Ok((leader, host.to_string(), port.parse().map_err(|_| GroupError::CoordinatorNotAvailable)?))
}

/// Cluster mode: the quorum's view, with the coordinator's internal topic
/// created in it if it was missing.
async fn view_with_internal_topic(link: &crate::server::cluster::ClusterLink, topic: &CoordinatorTopic) -> Result<ClusterView, GroupError> {
    let view = link.describe().await.map_err(|_| GroupError::CoordinatorNotAvailable)?;
    if view.topics.iter().any(|t| t.name == topic.name) {
        return Ok(view);
    }
    let live = view.brokers.iter().filter(|b| !b.fenced).count().max(1);
    let replication_factor = usize::try_from(topic.replication_factor).unwrap_or(1).clamp(1, live);
    let mut configs: std::collections::BTreeMap<String, String> = [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect();
    if let Some(min_isr) = topic.min_isr {
        let min_isr = usize::try_from(min_isr).unwrap_or(1).clamp(1, replication_factor);
        configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
    }
    let create = ControllerRequest::CreateTopic {
        name: topic.name.to_string(),
        partitions: topic.partitions.max(1) as u32,
        replication_factor: replication_factor as u16,
        configs,
    };
    if let Err(error) = link.call(&create).await {
        // Another broker may have created it first; the read below decides.
        tracing::debug!(%error, "creating {} through the quorum failed", topic.name);
    }
    link.describe().await.map_err(|_| GroupError::CoordinatorNotAvailable)
}

async fn locate(broker: &Broker, topic: &CoordinatorTopic, keys: &[String]) -> Vec<Result<Location, GroupError>> {
    match &broker.cluster {
        None => {
            // Standalone: this broker, once its internal topic exists.
            let ready = if topic.name == TXN_STATE_TOPIC {
                broker.with_txn_coordinator(None, |_, _| ()).map_err(|_| GroupError::CoordinatorNotAvailable)
            } else {
                broker.with_group_coordinator(None, |_, _| ())
            };
            let here = ready.map(|()| {
                let config = &broker.config;
                (config.node_id, config.advertised_host.clone(), i32::from(config.advertised_port))
            });
            keys.iter().map(|_| here.clone()).collect()
        }
        Some(link) => match view_with_internal_topic(link, topic).await {
            Ok(view) => {
                broker.reconcile_topics(&view);
                keys.iter().map(|key| leader_in_view(&view, topic.name, key, topic.partitions)).collect()
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
    let located = match coordinator_topic(broker, request.key_type) {
        None => Vec::new(),
        Some(topic) => locate(broker, &topic, &keys).await,
    };
    let answer = |key: &str, index: usize| -> Coordinator {
        let coordinator = Coordinator::default().with_key(StrBytes::from_string(key.to_string()));
        match located.get(index) {
            None => coordinator
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_static_str("unknown coordinator key type"))),
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
