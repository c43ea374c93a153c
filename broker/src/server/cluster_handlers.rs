//! Metadata, CreateTopics and DeleteTopics for a broker in cluster mode:
//! answered by the controller quorum, so what clients see is linearizable.

use kafka_protocol::messages::{
    create_topics_response::CreatableTopicResult,
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use std::collections::BTreeMap;

use super::cluster::ClusterLink;
use super::topics::TopicMeta;
use crate::error_codes::KafkaErrorCode;
use super::handlers::{check_partition_growth, delete_targets, deletion_result, partitions_result, CLUSTER_ID};
use super::Broker;
use crate::quorum::client::QuorumCallError;
use crate::quorum::{ControllerRequest, ControllerResponse};

fn topic_name(name: &str) -> Option<TopicName> {
    Some(TopicName(StrBytes::from_string(name.to_string())))
}

/// Answers Metadata from a linearizable read of the quorum. If the quorum
/// cannot be reached, every requested topic carries REQUEST_TIMED_OUT: a
/// stale answer would let a client see metadata go back in time.
/// A Metadata v10+ topic named by id only (no name, or an empty one).
fn named_by_id(topic: &kafka_protocol::messages::metadata_request::MetadataRequestTopic) -> bool {
    !topic.topic_id.is_nil() && topic.name.as_ref().is_none_or(|n| n.0.is_empty())
}

pub async fn metadata(broker: &Broker, link: &ClusterLink, header: &RequestHeader, request: MetadataRequest) -> MetadataResponse {
    let requested: Option<Vec<String>> = request
        .topics
        .as_ref()
        .map(|topics| topics.iter().filter(|t| !named_by_id(t)).filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_string())).collect());
    // v10+: topics named by id only (KIP-848 clients resolve their
    // assignment's topic ids this way); resolved once the view is read.
    let by_id: Vec<uuid::Uuid> = request.topics.iter().flatten().filter(|t| named_by_id(t)).map(|t| t.topic_id).collect();
    let allow_create = (header.request_api_version < 4 || request.allow_auto_topic_creation) && broker.config.auto_create_topics;
    let mut view = link.describe().await;
    if let (Ok(current), Some(names), true) = (&view, &requested, allow_create) {
        // Auto-create unknown topics through the quorum, then read again so
        // the answer shows them as the quorum has them.
        let missing: Vec<&String> = names.iter().filter(|n| !current.topics.iter().any(|t| &t.name == *n)).collect();
        for name in &missing {
            let create = ControllerRequest::CreateTopic {
                name: (*name).clone(),
                partitions: broker.config.default_num_partitions.max(1) as u32,
                replication_factor: 1,
                configs: Default::default(),
            };
            if let Err(error) = link.call(&create).await {
                tracing::debug!(topic = %name, %error, "auto-create through the quorum failed");
            }
        }
        if !missing.is_empty() {
            view = link.describe().await;
        }
    }
    let view = match view {
        Ok(view) => {
            broker.reconcile_topics(&view);
            view
        }
        Err(error) => {
            tracing::debug!(%error, "metadata read from the quorum failed");
            let topics = requested
                .unwrap_or_default()
                .into_iter()
                .map(|name| {
                    MetadataResponseTopic::default()
                        .with_name(topic_name(&name))
                        .with_error_code(ResponseError::RequestTimedOut.code())
                })
                .collect();
            return MetadataResponse::default()
                .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
                .with_controller_id(BrokerId(-1))
                .with_topics(topics);
        }
    };
    let brokers: Vec<MetadataResponseBroker> = view
        .brokers
        .iter()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let (host, port) = b.listener.rsplit_once(':')?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(port.parse().ok()?),
            )
        })
        .collect();
    let mut names: Vec<String> = requested.unwrap_or_else(|| view.topics.iter().map(|t| t.name.clone()).collect());
    let mut unknown_ids = Vec::new();
    for id in by_id {
        match view.topics.iter().find(|t| crate::server::topics::kafka_topic_uuid(&t.name, Some(t.topic_id)) == id) {
            Some(topic) => names.push(topic.name.clone()),
            None => unknown_ids.push(id),
        }
    }
    let leader_epochs = header.request_api_version >= 7;
    let topic_ids = header.request_api_version >= 10;
    let mut topics: Vec<MetadataResponseTopic> = names
        .into_iter()
        .map(|name| match view.topics.iter().find(|t| t.name == name) {
            None => MetadataResponseTopic::default()
                .with_name(topic_name(&name))
                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            Some(topic) => MetadataResponseTopic::default()
                .with_name(topic_name(&name))
                .with_topic_id(if topic_ids { crate::server::topics::kafka_topic_uuid(&topic.name, Some(topic.topic_id)) } else { uuid::Uuid::nil() })
                .with_partitions(
                topic
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(index, state)| {
                        let partition = MetadataResponsePartition::default()
                            .with_partition_index(index as i32)
                            .with_leader_id(BrokerId(state.leader.unwrap_or(-1)))
                            .with_leader_epoch(if leader_epochs { state.leader_epoch as i32 } else { -1 })
                            .with_replica_nodes(state.replicas.iter().map(|&b| BrokerId(b)).collect())
                            .with_isr_nodes(state.isr.iter().map(|&b| BrokerId(b)).collect());
                        if state.leader.is_none() {
                            partition.with_error_code(ResponseError::LeaderNotAvailable.code())
                        } else {
                            partition
                        }
                    })
                    .collect(),
            ),
        })
        .collect();
    for id in unknown_ids {
        topics.push(MetadataResponseTopic::default().with_topic_id(id).with_error_code(ResponseError::UnknownTopicId.code()));
    }
    // Clients send admin requests (CreateTopics, DeleteTopics) to the
    // "controller"; controllers are not reachable by clients, so, as KRaft
    // does, name a listed broker: this one if listed (it forwards them to
    // the quorum), else the first.
    let own_id = BrokerId(broker.config.node_id);
    let controller_id = if brokers.iter().any(|b| b.node_id == own_id) {
        own_id
    } else {
        brokers.first().map_or(BrokerId(-1), |b| b.node_id)
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(controller_id)
        .with_topics(topics)
}

/// Forwards each topic to the quorum. An unknown outcome is
/// REQUEST_TIMED_OUT (the topic may exist now); no reachable leader is
/// NOT_CONTROLLER (it certainly does not).
pub async fn create_topics(broker: &Broker, link: &ClusterLink, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let partitions = if topic.num_partitions == -1 {
            broker.config.default_num_partitions
        } else {
            topic.num_partitions
        };
        let replication_factor = if topic.replication_factor == -1 { 1 } else { topic.replication_factor };
        let result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor);
        let name = topic.name.0.as_str().to_string();
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref().map(|v| (c.name.as_str().to_string(), v.as_str().to_string())))
            .collect();
        // The same checks as a standalone broker's (name, partitions,
        // configs), before anything reaches the quorum; the controller then
        // checks the replication factor against the live brokers.
        let valid = crate::server::topics::validate(&broker.config, &name, &TopicMeta { partitions, configs: configs.clone() });
        let (code, message) = if let Err(error) = valid {
            (error.kafka_error_code(), Some(error.to_string()))
        } else if replication_factor < 1 {
            (ResponseError::InvalidReplicationFactor.code(), Some("replication factor must be positive".to_string()))
        } else if !topic.assignments.is_empty() {
            (ResponseError::InvalidReplicaAssignment.code(), Some("manual assignment is not supported".to_string()))
        } else if request.validate_only {
            match link.describe().await {
                Ok(view) if view.topics.iter().any(|t| t.name == name) => {
                    (ResponseError::TopicAlreadyExists.code(), Some(format!("topic {name:?} already exists")))
                }
                Ok(view) if usize::try_from(replication_factor).unwrap_or(0) > view.brokers.iter().filter(|b| !b.fenced).count() => (
                    ResponseError::InvalidReplicationFactor.code(),
                    Some(format!("replication factor {replication_factor} exceeds the live brokers")),
                ),
                Ok(_) => (0, None),
                Err(error) => (ResponseError::RequestTimedOut.code(), Some(error.to_string())),
            }
        } else {
            let call = ControllerRequest::CreateTopic {
                name,
                partitions: partitions as u32,
                replication_factor: replication_factor as u16,
                configs,
            };
            match link.call(&call).await {
                Ok(ControllerResponse::TopicCreated { .. }) => (0, None),
                Ok(ControllerResponse::Rejected { code, message }) => (code, Some(message)),
                Ok(other) => (ResponseError::UnknownServerError.code(), Some(format!("unexpected answer {other:?}"))),
                Err(QuorumCallError::NoLeader(reason)) => (ResponseError::NotController.code(), Some(reason)),
                Err(QuorumCallError::Unknown(reason)) => (ResponseError::RequestTimedOut.code(), Some(reason)),
            }
        };
        results.push(
            result
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string)),
        );
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// CreatePartitions through the quorum: checked like a standalone broker
/// does against a fresh view, then forwarded as `CreatePartitions` (the
/// controller assigns the new partitions); answers map as
/// [`create_topics`] does. Brokers open the new partitions when a view
/// shows them.
pub async fn create_partitions(
    link: &ClusterLink,
    request: kafka_protocol::messages::CreatePartitionsRequest,
) -> kafka_protocol::messages::CreatePartitionsResponse {
    let view = link.describe().await;
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.as_str().to_string();
        let outcome = match &view {
            Err(error) => Err((ResponseError::RequestTimedOut.code(), error.to_string())),
            Ok(view) => {
                let current = view.topics.iter().find(|t| t.name == name).map(|t| t.partitions.len());
                match check_partition_growth(&topic, current) {
                    Err(refused) => Err(refused),
                    Ok(()) if request.validate_only => Ok(()),
                    Ok(()) => {
                        let call = ControllerRequest::CreatePartitions { name, count: topic.count as u32 };
                        match link.call(&call).await {
                            Ok(ControllerResponse::PartitionsCreated { .. }) => Ok(()),
                            Ok(ControllerResponse::Rejected { code, message }) => Err((code, message)),
                            Ok(other) => Err((ResponseError::UnknownServerError.code(), format!("unexpected answer {other:?}"))),
                            Err(QuorumCallError::NoLeader(reason)) => Err((ResponseError::NotController.code(), reason)),
                            Err(QuorumCallError::Unknown(reason)) => Err((ResponseError::RequestTimedOut.code(), reason)),
                        }
                    }
                }
            }
        };
        results.push(partitions_result(topic.name, outcome));
    }
    kafka_protocol::messages::CreatePartitionsResponse::default().with_results(results)
}

/// Forwards each topic to the quorum as `DeleteTopic`, mapping answers as
/// [`create_topics`] does: the controller's refusal keeps its code
/// (UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist), no
/// reachable leader is NOT_CONTROLLER (certainly not deleted), an unknown
/// outcome REQUEST_TIMED_OUT (it may be deleted now). A topic the quorum
/// says is gone leaves this broker's cached view at once, so Produce and
/// Fetch here answer UNKNOWN_TOPIC_OR_PARTITION; then the view is read
/// again and the open partitions are brought in line with it.
pub async fn delete_topics(broker: &Broker, link: &ClusterLink, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut responses = Vec::with_capacity(request.topic_names.len() + request.topics.len());
    let mut gone = 0;
    for (result, target) in delete_targets(request) {
        let name = match target {
            Ok(name) => name,
            Err((code, message)) => {
                responses.push(deletion_result(result, code, Some(message.to_string())));
                continue;
            }
        };
        let (code, message) = match link.call(&ControllerRequest::DeleteTopic { name: name.clone() }).await {
            Ok(ControllerResponse::TopicDeleted) => (0, None),
            Ok(ControllerResponse::Rejected { code, message }) => (code, Some(message)),
            Ok(other) => (ResponseError::UnknownServerError.code(), Some(format!("unexpected answer {other:?}"))),
            Err(QuorumCallError::NoLeader(reason)) => (ResponseError::NotController.code(), Some(reason)),
            Err(QuorumCallError::Unknown(reason)) => (ResponseError::RequestTimedOut.code(), Some(reason)),
        };
        if code == 0 || code == ResponseError::UnknownTopicOrPartition.code() {
            link.forget_topic(&name);
            gone += 1;
        }
        responses.push(deletion_result(result, code, message));
    }
    if gone > 0 {
        match link.describe().await {
            Ok(view) => broker.reconcile_topics(&view),
            Err(error) => tracing::debug!(%error, "metadata read after a delete failed"),
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
