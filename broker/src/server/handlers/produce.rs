//! Produce: appends each partition's batches as its leader and answers per
//! partition. acks=1 answers after the leader's append; acks=-1 (all)
//! first needs at least `min.insync.replicas` in the ISR, then waits until
//! the high watermark passes the batch (or the request timeout); acks=0
//! gets no answer at all.

use std::time::Duration;

use crate::error_codes::KafkaErrorCode;

use kafka_protocol::messages::{
    produce_response::{PartitionProduceResponse, TopicProduceResponse},
    ProduceRequest, ProduceResponse,
};
use kafka_protocol::ResponseError;

use crate::replication::ProduceOutcome;
use crate::server::Broker;
use crate::storage::BatchHeader;

/// A partition's answer, or what it still waits for.
enum Pending {
    Done(PartitionProduceResponse),
    /// Appended; waits for replication.
    Replicating(PartitionProduceResponse, tokio::sync::oneshot::Receiver<ProduceOutcome>),
}

/// Appends one partition's records; registers an acks=all wait if asked.
fn append_partition(
    broker: &Broker,
    topic_name: &str,
    data: kafka_protocol::messages::produce_request::PartitionProduceData,
    acks: i16,
    timeout_ms: u64,
) -> Pending {
    let response = PartitionProduceResponse::default()
        .with_index(data.index)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    if !matches!(acks, -1..=1) {
        return Pending::Done(response.with_error_code(ResponseError::InvalidRequiredAcks.code()));
    }
    let partition = match broker.partition(topic_name, data.index) {
        Ok(partition) => partition,
        Err(code) => return Pending::Done(response.with_error_code(code)),
    };
    let Some(records) = data.records.filter(|r| !r.is_empty()) else {
        return Pending::Done(response.with_error_code(ResponseError::InvalidRecord.code()));
    };
    let acks_all = acks == -1;
    let min_insync_replicas = broker.topic(topic_name).map_or(broker.config.min_insync_replicas, |t| t.min_insync_replicas(&broker.config));
    let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
    let info = match partition.append_as_leader(&records, acks_all.then_some(min_insync_replicas)) {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "append failed");
            return Pending::Done(response.with_error_code(error.kafka_error_code()));
        }
    };
    broker.appended.notify_waiters();
    let response = response
        .with_base_offset(info.base_offset)
        .with_log_append_time_ms(info.log_append_time_ms)
        .with_log_start_offset(partition.log.log_start_offset());
    let mut outcome = Pending::Done(response.clone());
    if acks_all && partition.is_replicated() {
        let (request_id, receiver) = broker.replication.register_produce();
        let deadline_ms = broker.now_ms().saturating_add(timeout_ms);
        match partition.wait_for_replication(request_id, info.last_offset + 1, min_insync_replicas, deadline_ms) {
            Ok(()) => outcome = Pending::Replicating(response, receiver),
            Err(error) => {
                broker.replication.forget_produce(request_id);
                outcome = Pending::Done(response.with_base_offset(-1).with_error_code(error.kafka_error_code()));
            }
        }
    }
    let effects = partition.take_effects();
    drop(partition);
    broker.dispatch_effects(topic_name, data.index, effects);
    outcome
}

/// KIP-890 part 1: a transactional batch that would open its producer's
/// transaction on this partition is appended only if the transaction
/// coordinator has the partition in that producer's ongoing transaction
/// (see `transaction.partition.verification.enable`). `Some(code)` refuses
/// the partition's data.
async fn verify_transactional(broker: &Broker, transactional_id: Option<&str>, topic_name: &str, data: &kafka_protocol::messages::produce_request::PartitionProduceData) -> Option<i16> {
    if !broker.config.transaction_partition_verification_enable {
        return None;
    }
    let header = data.records.as_ref().and_then(|records| BatchHeader::parse(records))?;
    if !header.is_transactional() || header.is_control() || header.producer_id < 0 {
        return None;
    }
    let Some(transactional_id) = transactional_id.filter(|id| !id.is_empty()) else {
        // A transactional batch must name its transaction (Kafka: INVALID_REQUEST).
        return Some(ResponseError::InvalidRequest.code());
    };
    let partition = broker.partition(topic_name, data.index).ok()?;
    let open = partition.lock().unwrap_or_else(|e| e.into_inner()).has_open_transaction(header.producer_id);
    match open {
        Ok(true) => None,
        Err(error) => Some(error.kafka_error_code()),
        Ok(false) => match broker.verify_transaction_partition(transactional_id, header.producer_id, header.producer_epoch, topic_name, data.index).await {
            Ok(()) => None,
            Err(code) => {
                crate::mark!("txn.partition.verification_refused");
                tracing::debug!(transactional_id, topic_name, partition = data.index, producer_id = header.producer_id, code, "transactional batch refused: not in its producer's ongoing transaction");
                Some(code)
            }
        },
    }
}

pub(super) async fn produce(broker: &Broker, request: ProduceRequest) -> ProduceResponse {
    let timeout_ms = request.timeout_ms.max(0) as u64;
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let topic_name = topic_data.name.0.as_str().to_string();
        let mut pending: Vec<Pending> = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            if let Some(code) = verify_transactional(broker, transactional_id.as_deref(), &topic_name, &data).await {
                let response = PartitionProduceResponse::default().with_index(data.index).with_base_offset(-1).with_log_append_time_ms(-1).with_log_start_offset(-1);
                pending.push(Pending::Done(response.with_error_code(code)));
                continue;
            }
            pending.push(append_partition(broker, &topic_name, data, request.acks, timeout_ms));
        }
        topics.push((topic_data.name, pending));
    }
    // Every partition is appended before any wait, so they replicate in
    // parallel; the waits all end by the request timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let mut responses = Vec::with_capacity(topics.len());
    for (name, pending) in topics {
        let mut partition_responses = Vec::with_capacity(pending.len());
        for item in pending {
            let response = match item {
                Pending::Done(response) => response,
                Pending::Replicating(response, receiver) => match tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), receiver).await {
                    Ok(Ok(Ok(()))) => response,
                    Ok(Ok(Err(error))) => response.with_base_offset(-1).with_error_code(error.kafka_error_code()),
                    // The partition stopped leading without answering, or
                    // the deadline passed: the outcome is unknown.
                    Ok(Err(_)) | Err(_) => response.with_base_offset(-1).with_error_code(ResponseError::RequestTimedOut.code()),
                },
            };
            partition_responses.push(response);
        }
        responses.push(TopicProduceResponse::default().with_name(name).with_partition_responses(partition_responses));
    }
    ProduceResponse::default().with_responses(responses)
}
