//! Metadata (standalone; cluster mode answers from the quorum's view in
//! `cluster_handlers`).

use crate::error_codes::KafkaErrorCode;

use kafka_protocol::messages::{
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    BrokerId, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::admin::create_topic;
use super::CLUSTER_ID;
use crate::server::topics::{kafka_topic_uuid, TopicError, TopicMeta};
use crate::server::Broker;

pub(super) fn metadata(broker: &Broker, header: &RequestHeader, request: MetadataRequest) -> MetadataResponse {
    let config = &broker.config;
    let version = header.request_api_version;
    let mut unknown_ids = Vec::new();
    let names: Vec<String> = match &request.topics {
        None => broker.topics_snapshot().iter().map(|t| t.name.clone()).collect(),
        Some(list) => list
            .iter()
            .filter_map(|t| match &t.name {
                Some(name) if t.topic_id.is_nil() || !name.0.is_empty() => Some(name.0.as_str().to_string()),
                // v10+: a topic named by id only, no name or an empty one
                // (KIP-848 clients resolve their assignment's topic ids this way).
                _ => {
                    let found = broker.topics_snapshot().iter().find(|topic| kafka_topic_uuid(&topic.name, topic.topic_id) == t.topic_id).map(|topic| topic.name.clone());
                    if found.is_none() {
                        unknown_ids.push(t.topic_id);
                    }
                    found
                }
            })
            .collect(),
    };
    // Before v4 there is no flag and auto-creation follows the broker setting.
    let allow_create = header.request_api_version < 4 || request.allow_auto_topic_creation;
    let mut topics = Vec::with_capacity(names.len());
    for name in names {
        if broker.topic(&name).is_none() && allow_create && config.auto_create_topics {
            let meta = TopicMeta {
                partitions: config.default_num_partitions,
                configs: Default::default(),
            };
            match create_topic(broker, &name, meta) {
                Ok(()) | Err(TopicError::AlreadyExists(_)) => {}
                Err(error) => {
                    tracing::warn!(topic = %name, %error, "auto-create failed");
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name))))
                            .with_error_code(error.kafka_error_code()),
                    );
                    continue;
                }
            }
        }
        let topic_response = match broker.topic(&name) {
            None => MetadataResponseTopic::default().with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            Some(topic) => MetadataResponseTopic::default().with_partitions(
                (0..topic.meta.partitions)
                    .map(|p| {
                        MetadataResponsePartition::default()
                            .with_partition_index(p)
                            .with_leader_id(BrokerId(config.node_id))
                            .with_leader_epoch(0)
                            .with_replica_nodes(vec![BrokerId(config.node_id)])
                            .with_isr_nodes(vec![BrokerId(config.node_id)])
                    })
                    .collect(),
            ),
        };
        let topic_id = match broker.topic(&name) {
            Some(topic) if version >= 10 => kafka_topic_uuid(&topic.name, topic.topic_id),
            _ => uuid::Uuid::nil(),
        };
        topics.push(topic_response.with_name(Some(TopicName(StrBytes::from_string(name)))).with_topic_id(topic_id));
    }
    for topic_id in unknown_ids {
        topics.push(MetadataResponseTopic::default().with_topic_id(topic_id).with_error_code(ResponseError::UnknownTopicId.code()));
    }
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(config.node_id))
            .with_host(StrBytes::from_string(config.advertised_host.clone()))
            .with_port(config.advertised_port)])
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(config.node_id))
        .with_topics(topics)
}
