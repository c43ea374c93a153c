//! One handler per API. Each takes a decoded request and returns the
//! encoded response; errors inside a request become Kafka error codes in the
//! response, per topic or partition, never a closed connection.

use crate::error_codes::KafkaErrorCode;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    api_versions_response::ApiVersion, create_topics_response::CreatableTopicResult,
    fetch_response::{FetchableTopicResponse, PartitionData},
    list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    produce_response::{PartitionProduceResponse, TopicProduceResponse},
    delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult},
    delete_topics_response::DeletableTopicResult,
    ApiKey, ApiVersionsResponse, BrokerId, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse, CreateTopicsRequest, CreateTopicsResponse, FetchRequest,
    FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;

use super::topics::{self, TopicError, TopicMeta};
use super::Broker;
use crate::wire::{encode_response, DecodeError, Request, SUPPORTED_APIS};

/// The cluster id reported in Metadata.
pub const CLUSTER_ID: &str = "dlog-cluster";
/// Isolation level `read_committed` in Fetch and ListOffsets.
const READ_COMMITTED: i8 = 1;
/// ListOffsets timestamp meaning "the latest offset".
const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets timestamp meaning "the record with the largest timestamp" (v7+).
const MAX_TIMESTAMP: i64 = -3;
/// ListOffsets timestamp meaning "the earliest offset".
const EARLIEST_TIMESTAMP: i64 = -2;

fn encode<R: Encodable>(api: ApiKey, header: &RequestHeader, body: &R) -> Result<Option<Bytes>, DecodeError> {
    encode_response(api, header.request_api_version, header.correlation_id, body)
        .map(Some)
        .map_err(|e| DecodeError::Malformed(format!("{api:?} v{} response did not encode: {e}", header.request_api_version)))
}

/// Dispatches a decoded request to its handler.
pub async fn handle(broker: &Broker, header: &RequestHeader, request: Request) -> Result<Option<Bytes>, DecodeError> {
    match request {
        Request::ApiVersions(_) => encode(ApiKey::ApiVersions, header, &api_versions_body(0)),
        Request::Metadata(request) => {
            let response = match &broker.cluster {
                Some(link) => super::cluster_handlers::metadata(broker, link, header, request).await,
                None => metadata(broker, header, request),
            };
            encode(ApiKey::Metadata, header, &response)
        }
        Request::CreateTopics(request) => {
            let response = match &broker.cluster {
                Some(link) => super::cluster_handlers::create_topics(broker, link, request).await,
                None => create_topics(broker, request),
            };
            encode(ApiKey::CreateTopics, header, &response)
        }
        Request::Produce(request) => {
            let acks = request.acks;
            let response = produce(broker, request);
            if acks == 0 {
                Ok(None)
            } else {
                encode(ApiKey::Produce, header, &response)
            }
        }
        Request::Fetch(request) => {
            let response = fetch(broker, request).await;
            encode(ApiKey::Fetch, header, &response)
        }
        Request::ListOffsets(request) => encode(ApiKey::ListOffsets, header, &list_offsets(broker, header.request_api_version, request)),
        Request::DeleteRecords(request) => encode(ApiKey::DeleteRecords, header, &delete_records(broker, request)),
        Request::DeleteTopics(request) => {
            let response = match &broker.cluster {
                Some(link) => super::cluster_handlers::delete_topics(broker, link, request).await,
                None => delete_topics(broker, request),
            };
            encode(ApiKey::DeleteTopics, header, &response)
        }
    }
}

fn api_versions_body(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(
        SUPPORTED_APIS
            .iter()
            .map(|&(api, min, max)| {
                ApiVersion::default()
                    .with_api_key(api as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
    )
}

/// The answer to an ApiVersions request at a version we do not speak:
/// UNSUPPORTED_VERSION and our table, in v0 so any client can read it.
pub fn api_versions_unsupported(correlation_id: i32) -> Bytes {
    let body = api_versions_body(ResponseError::UnsupportedVersion.code());
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &body).unwrap_or_default()
}

/// What one entry of a DeleteTopics request asks for: the result to send
/// back (name and id echoed, error code still 0) and the name to delete,
/// or the result already carrying the error that refuses the entry.
pub(super) type DeleteTarget = (DeletableTopicResult, Result<String, (i16, &'static str)>);

/// The entries of a DeleteTopics request. Up to v5 topics are named in
/// `topic_names`; from v6 each entry of `topics` names a topic by name or
/// by id. Only names are supported: an id alone is UNKNOWN_TOPIC_ID (we
/// hand out no Kafka topic ids), both or neither is INVALID_REQUEST, as in
/// Kafka.
pub(super) fn delete_targets(request: DeleteTopicsRequest) -> Vec<DeleteTarget> {
    let by_name = request.topic_names.into_iter().map(|name| {
        let text = name.0.as_str().to_string();
        (DeletableTopicResult::default().with_name(Some(name)), Ok(text))
    });
    let by_state = request.topics.into_iter().map(|state| {
        let result = DeletableTopicResult::default().with_name(state.name.clone()).with_topic_id(state.topic_id);
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
pub(super) fn deletion_result(result: DeletableTopicResult, code: i16, message: Option<String>) -> DeletableTopicResult {
    result.with_error_code(code).with_error_message(message.filter(|_| code != 0).map(StrBytes::from_string))
}

/// Standalone DeleteTopics: each named local topic is deleted with its
/// partitions' logs (see [`Broker::delete_local_topic`]).
fn delete_topics(broker: &Broker, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let responses = delete_targets(request)
        .into_iter()
        .map(|(result, target)| match target {
            Err((code, message)) => deletion_result(result, code, Some(message.to_string())),
            Ok(name) => match broker.delete_local_topic(&name) {
                Ok(()) => deletion_result(result, 0, None),
                Err(code) if code == kafka_protocol::ResponseError::UnknownTopicOrPartition.code() => {
                    deletion_result(result, code, Some(format!("no topic named {name:?}")))
                }
                Err(code) => deletion_result(result, code, Some(format!("topic {name:?} was not deleted: its files could not be removed"))),
            },
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Creates a topic, or finds it if another request created it first.
fn create_topic(broker: &Broker, name: &str, meta: TopicMeta) -> Result<(), TopicError> {
    let mut topics_guard = broker.topics.lock().unwrap_or_else(|e| e.into_inner());
    if topics_guard.contains_key(name) {
        return Err(TopicError::AlreadyExists(name.into()));
    }
    let topic = topics::create(&broker.config, &broker.disk, &broker.clock, name, meta, None)?;
    topics_guard.insert(name.into(), std::sync::Arc::new(topic));
    Ok(())
}

fn metadata(broker: &Broker, header: &RequestHeader, request: MetadataRequest) -> MetadataResponse {
    let config = &broker.config;
    let names: Vec<String> = match &request.topics {
        None => broker.topics_snapshot().iter().map(|t| t.name.clone()).collect(),
        Some(list) => list
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_string()))
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
        topics.push(topic_response.with_name(Some(TopicName(StrBytes::from_string(name)))));
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

fn create_topics(broker: &Broker, request: CreateTopicsRequest) -> CreateTopicsResponse {
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
                Some((ResponseError::InvalidReplicationFactor.code(), "replication factor must be 1 on a single broker".to_string()))
            } else if !topic.assignments.is_empty() {
                Some((ResponseError::InvalidReplicaAssignment.code(), "manual assignment is not supported".to_string()))
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
                result = result.with_error_code(code).with_error_message(Some(StrBytes::from_string(message)));
            }
            result
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

fn produce(broker: &Broker, request: ProduceRequest) -> ProduceResponse {
    let valid_acks = matches!(request.acks, -1..=1);
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic_data| {
            let topic_name = topic_data.name.0.as_str().to_string();
            let partition_responses = topic_data
                .partition_data
                .into_iter()
                .map(|data| {
                    let response = PartitionProduceResponse::default()
                        .with_index(data.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    if !valid_acks {
                        return response.with_error_code(ResponseError::InvalidRequiredAcks.code());
                    }
                    let log = match broker.partition_log(&topic_name, data.index) {
                        Ok(log) => log,
                        Err(code) => return response.with_error_code(code),
                    };
                    let Some(records) = data.records.filter(|r| !r.is_empty()) else {
                        return response.with_error_code(ResponseError::InvalidRecord.code());
                    };
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    match log.append(&records) {
                        Ok(info) => {
                            broker.appended.notify_waiters();
                            response
                                .with_base_offset(info.base_offset)
                                .with_log_start_offset(log.log_start_offset())
                        }
                        Err(error) => {
                            tracing::debug!(%error, "append failed");
                            response.with_error_code(error.kafka_error_code())
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Reads what a fetch asks for, without waiting; returns the response and
/// how many record bytes it carries.
fn fetch_once(broker: &Broker, request: &FetchRequest) -> (FetchResponse, usize) {
    let mut bytes_left = (request.max_bytes.max(0) as usize).min(broker.config.fetch_response_bytes_max);
    let mut total_bytes = 0;
    let read_committed = request.isolation_level == READ_COMMITTED;
    let responses = request
        .topics
        .iter()
        .map(|fetch_topic| {
            let topic_name = fetch_topic.topic.0.as_str();
            let partitions = fetch_topic
                .partitions
                .iter()
                .map(|fetch_partition| {
                    let mut data = PartitionData::default()
                        .with_partition_index(fetch_partition.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_aborted_transactions(read_committed.then(Vec::new));
                    let log = match broker.partition_log(topic_name, fetch_partition.partition) {
                        Ok(log) => log,
                        Err(code) => return data.with_error_code(code),
                    };
                    let log = log.lock().unwrap_or_else(|e| e.into_inner());
                    // Single node: everything appended is committed, so the
                    // high watermark is the log end, and with no transactions
                    // yet the last stable offset equals the high watermark.
                    let high_watermark = log.log_end_offset();
                    let log_start = log.log_start_offset();
                    data = data
                        .with_high_watermark(high_watermark)
                        .with_last_stable_offset(high_watermark)
                        .with_log_start_offset(log_start);
                    let offset = fetch_partition.fetch_offset;
                    if offset < log_start || offset > high_watermark {
                        return data.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    if offset == high_watermark || bytes_left == 0 {
                        return data.with_records(Some(Bytes::new()));
                    }
                    let max_bytes = (fetch_partition.partition_max_bytes.max(0) as usize).min(bytes_left);
                    match log.read_bounded(offset, max_bytes.max(1), high_watermark) {
                        Ok(read) => {
                            let records = read.records;
                            bytes_left = bytes_left.saturating_sub(records.len());
                            total_bytes += records.len();
                            data.with_records(Some(records))
                        }
                        Err(error) => {
                            tracing::debug!(%error, "read failed");
                            data.with_error_code(error.kafka_error_code())
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(fetch_topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    (FetchResponse::default().with_responses(responses), total_bytes)
}

async fn fetch(broker: &Broker, request: FetchRequest) -> FetchResponse {
    let wait_ms = (request.max_wait_ms.max(0) as u64).min(broker.config.fetch_wait_ms_max);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let min_bytes = request.min_bytes.max(1) as usize;
    loop {
        // Register for the wake-up before reading, so an append between the
        // read and the wait is not missed.
        let appended = broker.appended.notified();
        let (response, total_bytes) = fetch_once(broker, &request);
        let now = tokio::time::Instant::now();
        let has_error = response.responses.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0);
        if total_bytes >= min_bytes || has_error || now >= deadline {
            return response;
        }
        let _ = tokio::time::timeout(deadline - now, appended).await;
    }
}

fn list_offsets(broker: &Broker, version: i16, request: ListOffsetsRequest) -> ListOffsetsResponse {
    // The leader epoch field exists from v4 on; before that it must stay unset.
    let leader_epoch = if version >= 4 { 0 } else { -1 };
    let topics = request
        .topics
        .into_iter()
        .map(|list_topic| {
            let topic_name = list_topic.name.0.as_str().to_string();
            let partitions = list_topic
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(leader_epoch);
                    let log = match broker.partition_log(&topic_name, p.partition_index) {
                        Ok(log) => log,
                        Err(code) => return response.with_error_code(code),
                    };
                    let log = log.lock().unwrap_or_else(|e| e.into_inner());
                    match p.timestamp {
                        LATEST_TIMESTAMP => response.with_offset(log.log_end_offset()),
                        EARLIEST_TIMESTAMP => response.with_offset(log.log_start_offset()),
                        // The batch holding the largest timestamp (KIP-734),
                        // asked for from v7 on (Kafka refuses it below).
                        MAX_TIMESTAMP if version < 7 => response.with_error_code(ResponseError::UnsupportedVersion.code()),
                        timestamp if timestamp >= 0 || timestamp == MAX_TIMESTAMP => match log.offset_for_timestamp(timestamp) {
                            Ok(Some(found)) => response.with_offset(found.offset).with_timestamp(found.timestamp_ms),
                            Ok(None) => response,
                            Err(error) => response.with_error_code(error.kafka_error_code()),
                        },
                        _ => response.with_error_code(ResponseError::InvalidRequest.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(list_topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// DeleteRecords: advances each partition's log start offset; `-1` means
/// "up to the high watermark". The answer is the new low watermark.
fn delete_records(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
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
                    let log = match broker.partition_log(&name, p.partition_index) {
                        Ok(log) => log,
                        Err(code) => return result.with_error_code(code),
                    };
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    let offset = if p.offset == -1 { log.log_end_offset() } else { p.offset };
                    match log.delete_records(offset) {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark),
                        Err(error) => result.with_error_code(error.kafka_error_code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
