//! DescribeConfigs v1-4: a topic's configs (its own overrides, else the
//! broker's defaults) and this broker's settings, by their Kafka names.
//! Topics are known from the quorum's view in cluster mode, from the local
//! topics in standalone mode; a broker answers for itself only (clients send
//! a broker's DescribeConfigs to that broker, as Kafka requires).

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult},
    DescribeConfigsRequest, DescribeConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::topics::{log_config, TOPIC_CONFIG_KEYS};
use crate::server::Broker;

/// Kafka's `ConfigResource.Type`.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's `ConfigSource`.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's `ConfigType` (v3+).
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;
const TYPE_BOOLEAN: i8 = 1;

/// One described setting: name, value, source, type.
type Described = (String, String, i8, i8);

/// A topic's configs, given its overrides, or `None` if it does not exist.
fn topic_configs(broker: &Broker, name: &str) -> Option<BTreeMap<String, String>> {
    match &broker.cluster {
        Some(link) => link.cached_view()?.topics.into_iter().find(|t| t.name == name).map(|t| t.configs),
        None => broker.topic(name).map(|t| t.meta.configs.clone()),
    }
}

fn describe_topic(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<Described> {
    let defaults = log_config(&broker.config, &BTreeMap::new()).unwrap_or_default();
    TOPIC_CONFIG_KEYS
        .iter()
        .map(|&key| {
            let (default, config_type) = match key {
                "segment.bytes" => (defaults.segment_bytes.to_string(), TYPE_INT),
                "segment.ms" => (defaults.segment_ms.to_string(), TYPE_LONG),
                "retention.ms" => (defaults.retention_ms.unwrap_or(-1).to_string(), TYPE_LONG),
                "retention.bytes" => (defaults.retention_bytes.map_or(-1, |b| b as i64).to_string(), TYPE_LONG),
                "cleanup.policy" => (defaults.cleanup_policy.to_string(), TYPE_LIST),
                "min.cleanable.dirty.ratio" => (defaults.min_cleanable_dirty_ratio.to_string(), TYPE_DOUBLE),
                "delete.retention.ms" => (defaults.delete_retention_ms.to_string(), TYPE_LONG),
                "max.message.bytes" => (defaults.max_message_bytes.to_string(), TYPE_INT),
                "min.insync.replicas" => (broker.config.min_insync_replicas.to_string(), TYPE_INT),
                _ => (String::new(), TYPE_STRING),
            };
            match overrides.get(key) {
                Some(value) => (key.to_string(), value.clone(), SOURCE_TOPIC, config_type),
                None => (key.to_string(), default, SOURCE_DEFAULT, config_type),
            }
        })
        .collect()
}

fn describe_broker(broker: &Broker) -> Vec<Described> {
    let c = &broker.config;
    let setting = |name: &str, value: String, config_type: i8| (name.to_string(), value, SOURCE_STATIC_BROKER, config_type);
    vec![
        setting("auto.create.topics.enable", c.auto_create_topics.to_string(), TYPE_BOOLEAN),
        setting("broker.session.timeout.ms", c.broker_session_timeout_ms.to_string(), TYPE_INT),
        setting("fetch.max.bytes", c.fetch_response_bytes_max.to_string(), TYPE_INT),
        setting("log.flush", c.log_flush.to_string(), TYPE_STRING),
        setting("log.segment.bytes", c.log_segment_bytes.to_string(), TYPE_INT),
        setting("min.insync.replicas", c.min_insync_replicas.to_string(), TYPE_INT),
        setting("num.partitions", c.default_num_partitions.to_string(), TYPE_INT),
        setting("replica.fetch.backoff.ms", c.replica_fetch_backoff_ms.to_string(), TYPE_INT),
        setting("replica.fetch.wait.max.ms", c.replica_fetch_wait_max_ms.to_string(), TYPE_INT),
        setting("replica.lag.time.max.ms", c.replica_lag_time_max_ms.to_string(), TYPE_LONG),
        setting("socket.request.max.bytes", c.request_frame_bytes_max.to_string(), TYPE_INT),
    ]
}

pub(super) fn describe_configs(broker: &Broker, version: i16, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.as_str().to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let described = match resource.resource_type {
                RESOURCE_TOPIC => match topic_configs(broker, &name) {
                    Some(overrides) => Ok(describe_topic(broker, &overrides)),
                    None => Err((ResponseError::UnknownTopicOrPartition.code(), format!("no topic {name:?}"))),
                },
                RESOURCE_BROKER if name == broker.config.node_id.to_string() => Ok(describe_broker(broker)),
                RESOURCE_BROKER => Err((
                    ResponseError::InvalidRequest.code(),
                    format!("this is broker {}: ask broker {name:?} itself", broker.config.node_id),
                )),
                other => Err((ResponseError::InvalidRequest.code(), format!("resource type {other} is not supported"))),
            };
            match described {
                Err((code, message)) => result.with_error_code(code).with_error_message(Some(StrBytes::from_string(message))),
                Ok(configs) => {
                    // Null asks for every key; so does an empty list (what
                    // some clients send for "all").
                    let wanted = resource.configuration_keys.as_ref().filter(|keys| !keys.is_empty());
                    let configs = configs
                        .into_iter()
                        .filter(|(key, ..)| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == key)))
                        .map(|(key, value, source, config_type)| {
                            let entry = DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_string(key))
                                .with_value(Some(StrBytes::from_string(value)))
                                .with_read_only(resource.resource_type == RESOURCE_BROKER)
                                .with_config_source(source);
                            if version >= 3 {
                                entry.with_config_type(config_type)
                            } else {
                                entry
                            }
                        })
                        .collect();
                    result.with_configs(configs)
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
