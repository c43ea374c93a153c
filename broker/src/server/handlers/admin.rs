//! Standalone admin handlers: CreateTopics, DeleteTopics, DeleteRecords
//! (cluster mode forwards the first two to the quorum: `cluster_handlers`).

use crate::error_codes::KafkaErrorCode;

use kafka_protocol::messages::{
    create_topics_response::CreatableTopicResult,
    delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult},
    delete_topics_response::DeletableTopicResult,
    CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::topics::{self, TopicError, TopicMeta};
use crate::server::Broker;

/// What one entry of a DeleteTopics request asks for: the result to send
/// back (name and id echoed, error code still 0) and the name to delete,
/// or the result already carrying the error that refuses the entry.
pub(in crate::server) type DeleteTarget = (DeletableTopicResult, Result<String, (i16, &'static str)>);

/// The entries of a DeleteTopics request. Up to v5 topics are named in
/// `topic_names`; from v6 each entry of `topics` names a topic by name or
/// by id. Only names are supported: an id alone is UNKNOWN_TOPIC_ID (we
/// hand out no Kafka topic ids), both or neither is INVALID_REQUEST, as in
/// Kafka.
pub(in crate::server) fn delete_targets(request: DeleteTopicsRequest) -> Vec<DeleteTarget> {
    let by_name = request.topic_names.into_iter().map(|name| {
        let text = name.0.as_str().to_string();
        (DeletableTopicResult::default().with_name(Some(name)), Ok(text))
    });
    let by_state = request.topics.into_iter().map(|state| {
        let result = DeletableTopicResult::default()
            .with_name(state.name.clone())
            .with_topic_id(state.topic_id);
        let target = match (state.name, state.topic_id.is_nil()) {
            (Some(name), true) => Ok(name.0.as_str().to_string()),
            (Some(_), false) => Err((ResponseError::InvalidRequest.code(), "give a topic name or a topic id, not both")),
            (None, false) => Err((ResponseError::UnknownTopicId.code(), "topics are deleted by name only")),
            (None, true) => Err((ResponseError::InvalidRequest.code(), "an entry names no topic")),
        };
        (result, target)
    });
    by_name.chain(by_state).collect()
}

/// Fills in a DeleteTopics result: the code, and a message for versions
/// that carry one (the encoder writes it only from v5).
pub(in crate::server) fn deletion_result(result: DeletableTopicResult, code: i16, message: Option<String>) -> DeletableTopicResult {
    result
        .with_error_code(code)
        .with_error_message(message.filter(|_| code != 0).map(StrBytes::from_string))
}

/// Standalone DeleteTopics: each named local topic is deleted with its
/// partitions' logs (see [`Broker::delete_local_topic`]).
pub(super) fn delete_topics(broker: &Broker, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let responses = delete_targets(request)
        .into_iter()
        .map(|(result, target)| match target {
            Err((code, message)) => deletion_result(result, code, Some(message.to_string())),
            Ok(name) => match broker.delete_local_topic(&name) {
                Ok(()) => deletion_result(result, 0, None),
                Err(code) if code == kafka_protocol::ResponseError::UnknownTopicOrPartition.code() => {
                    deletion_result(result, code, Some(format!("no topic named {name:?}")))
                }
                Err(code) => deletion_result(
                    result,
                    code,
                    Some(format!("topic {name:?} was not deleted: its files could not be removed")),
                ),
            },
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Creates a topic, or finds it if another request created it first.
pub(in crate::server) fn create_topic(broker: &Broker, name: &str, meta: TopicMeta) -> Result<(), TopicError> {
    let mut topics_guard = broker.topics.lock().unwrap_or_else(|e| e.into_inner());
    if topics_guard.contains_key(name) {
        return Err(TopicError::AlreadyExists(name.into()));
    }
    let topic = topics::create(&broker.config, &broker.disk, &broker.clock, name, meta, None)?;
    topics_guard.insert(name.into(), std::sync::Arc::new(topic));
    Ok(())
}

pub(super) fn create_topics(broker: &Broker, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_string();
            let partitions = if topic.num_partitions == -1 {
                broker.config.default_num_partitions
            } else {
                topic.num_partitions
            };
            let mut result = CreatableTopicResult::default()
                .with_name(topic.name.clone())
                .with_num_partitions(partitions)
                .with_replication_factor(1);
            let error = if !(topic.replication_factor == -1 || topic.replication_factor == 1) {
                Some((
                    ResponseError::InvalidReplicationFactor.code(),
                    "replication factor must be 1 on a single broker".to_string(),
                ))
            } else if !topic.assignments.is_empty() {
                Some((
                    ResponseError::InvalidReplicaAssignment.code(),
                    "manual assignment is not supported".to_string(),
                ))
            } else {
                let configs = topic
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.as_str().to_string(), v.as_str().to_string())))
                    .collect();
                let meta = TopicMeta { partitions, configs };
                let outcome = if request.validate_only {
                    topics::validate(&broker.config, &name, &meta).and_then(|()| {
                        if broker.topic(&name).is_some() {
                            Err(TopicError::AlreadyExists(name.clone()))
                        } else {
                            Ok(())
                        }
                    })
                } else {
                    create_topic(broker, &name, meta)
                };
                outcome.err().map(|e| (e.kafka_error_code(), e.to_string()))
            };
            if let Some((code, message)) = error {
                result = result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message)));
            }
            result
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// The checks CreatePartitions makes before growing anything: no manual
/// assignment, and more partitions than today (`current`).
pub(in crate::server) fn check_partition_growth(
    topic: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
    current: Option<usize>,
) -> Result<(), (i16, String)> {
    if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err((ResponseError::InvalidReplicaAssignment.code(), "manual assignment is not supported".into()));
    }
    let Some(current) = current else {
        return Err((ResponseError::UnknownTopicOrPartition.code(), format!("no topic {:?}", topic.name.0.as_str())));
    };
    if usize::try_from(topic.count).unwrap_or(0) <= current {
        return Err((
            ResponseError::InvalidPartitions.code(),
            format!("topic has {current} partitions; a count of {} does not add any", topic.count),
        ));
    }
    Ok(())
}

/// One CreatePartitions result.
pub(in crate::server) fn partitions_result(
    name: kafka_protocol::messages::TopicName,
    outcome: Result<(), (i16, String)>,
) -> kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult {
    let result = kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult::default().with_name(name);
    match outcome {
        Ok(()) => result,
        Err((code, message)) => result.with_error_code(code).with_error_message(Some(StrBytes::from_string(message))),
    }
}

/// CreatePartitions on a standalone broker: each topic grows in place.
pub(super) fn create_partitions(
    broker: &Broker,
    request: kafka_protocol::messages::CreatePartitionsRequest,
) -> kafka_protocol::messages::CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_string();
            let current = broker.topic(&name).map(|t| t.partitions.len());
            let outcome = check_partition_growth(&topic, current).and_then(|()| {
                if request.validate_only {
                    return Ok(());
                }
                broker.grow_topic(&name, None, topic.count).map_err(|code| (code, "growing the topic failed".into()))
            });
            partitions_result(topic.name, outcome)
        })
        .collect();
    kafka_protocol::messages::CreatePartitionsResponse::default().with_results(results)
}

/// DeleteRecords: advances each partition's log start offset; `-1` means
/// "up to the high watermark". The answer is the new low watermark.
pub(super) fn delete_records(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let partition = match broker.partition(&name, p.partition_index) {
                        Ok(partition) => partition,
                        Err(code) => return result.with_error_code(code),
                    };
                    let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(error) = partition.check_leader(None) {
                        return result.with_error_code(error.kafka_error_code());
                    }
                    // -1 is the high watermark, as in Kafka; records above it
                    // are not committed and may not be deleted.
                    let high_watermark = partition.high_watermark();
                    let offset = if p.offset == -1 { high_watermark } else { p.offset };
                    if offset > high_watermark {
                        return result.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    let log = &mut partition.log;
                    match log.delete_records(offset) {
                        Ok(low_watermark) => {
                            partition.on_log_start_advanced();
                            result.with_low_watermark(low_watermark)
                        }
                        Err(error) => result.with_error_code(error.kafka_error_code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
