//! The transactional APIs a producer sends its coordinator:
//! AddPartitionsToTxn (v0–5; v4+ batched by transactional id, with
//! `verify_only`, KIP-890 part 1), AddOffsetsToTxn (v0–4) and EndTxn
//! (v0–4), and the admin's ListTransactions (v0–1) and
//! DescribeTransactions (v0); InitProducerId with a transactional id is in
//! `init_producer_id.rs`. Each decodes, asks the core
//! ([`crate::txn::TxnCoordinator`], through `server::txn`) and encodes its
//! answer. A fenced producer is told PRODUCER_FENCED from the version
//! that knows it (v2 of these three APIs), INVALID_PRODUCER_EPOCH before.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{describe_transactions_response, list_transactions_response};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::error_codes::KafkaErrorCode;
use crate::server::Broker;
use crate::txn::{TopicPartition, TxnError};

/// The first version of AddPartitionsToTxn, AddOffsetsToTxn and EndTxn
/// whose clients know PRODUCER_FENCED.
const FIRST_FENCED_VERSION: i16 = 2;

/// Whether `tp` exists (in cluster mode: in the quorum's last view).
fn partition_exists(broker: &Broker, tp: &TopicPartition) -> bool {
    match &broker.cluster {
        None => broker.topic(&tp.0).is_some_and(|t| usize::try_from(tp.1).is_ok_and(|i| i < t.partitions.len())),
        Some(link) => link.cached_view().is_some_and(|view| {
            view.topics.iter().any(|t| t.name == tp.0 && usize::try_from(tp.1).is_ok_and(|i| i < t.partitions.len()))
        }),
    }
}

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<TopicPartition> {
    topics.iter().flat_map(|t| t.partitions.iter().map(move |&p| (t.name.0.to_string(), p))).collect()
}

/// Per partition of one transaction: its error code (0 success).
async fn add_partitions_for(
    broker: &Broker,
    version: i16,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, i16)> {
    if verify_only {
        let verified = broker.with_txn_coordinator(Some(transactional_id), |core, _| core.verify_partitions(transactional_id, producer_id, producer_epoch, &partitions));
        return match verified.and_then(|v| v) {
            Ok(results) => results.into_iter().map(|(tp, r)| (tp, r.err().map_or(0, |e| e.kafka_error_code()))).collect(),
            Err(error) => partitions.into_iter().map(|tp| (tp, error.kafka_error_code())).collect(),
        };
    }
    // As Kafka: partitions that do not exist are refused and the others
    // not attempted, so a typo does not open a transaction.
    if partitions.iter().any(|tp| !partition_exists(broker, tp)) {
        return partitions
            .into_iter()
            .map(|tp| {
                let code = if partition_exists(broker, &tp) { ResponseError::OperationNotAttempted.code() } else { ResponseError::UnknownTopicOrPartition.code() };
                (tp, code)
            })
            .collect();
    }
    let answer = broker
        .txn_request(transactional_id, |core, now_ms, waiter| core.add_partitions(now_ms, waiter, transactional_id, producer_id, producer_epoch, &partitions))
        .await;
    let code = match answer {
        Ok(_) => 0,
        Err(error) => {
            tracing::debug!(transactional_id, %error, "AddPartitionsToTxn refused");
            error.for_version(version, FIRST_FENCED_VERSION).kafka_error_code()
        }
    };
    partitions.into_iter().map(|tp| (tp, code)).collect()
}

fn topic_results(results: Vec<(TopicPartition, i16)>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut by_topic: std::collections::BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> = std::collections::BTreeMap::new();
    for ((topic, partition), code) in results {
        by_topic
            .entry(topic)
            .or_default()
            .push(AddPartitionsToTxnPartitionResult::default().with_partition_index(partition).with_partition_error_code(code));
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| AddPartitionsToTxnTopicResult::default().with_name(TopicName(topic.into())).with_results_by_partition(partitions))
        .collect()
}

pub(super) async fn add_partitions_to_txn(broker: &Broker, header: &RequestHeader, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let version = header.request_api_version;
    if version <= 3 {
        let results = add_partitions_for(
            broker,
            version,
            request.v3_and_below_transactional_id.as_str(),
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            false,
            partitions_of(&request.v3_and_below_topics),
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topic_results(results));
    }
    let mut results = Vec::new();
    for transaction in &request.transactions {
        let id = transaction.transactional_id.as_str();
        let partitions = partitions_of(&transaction.topics);
        let per_partition =
            add_partitions_for(broker, version, id, transaction.producer_id.0, transaction.producer_epoch, transaction.verify_only, partitions).await;
        results.push(AddPartitionsToTxnResult::default().with_transactional_id(transaction.transactional_id.clone()).with_topic_results(topic_results(per_partition)));
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

pub(super) async fn add_offsets_to_txn(broker: &Broker, header: &RequestHeader, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let id = request.transactional_id.as_str();
    let (producer_id, producer_epoch, group_id) = (request.producer_id.0, request.producer_epoch, request.group_id.as_str());
    let answer = broker.txn_request(id, |core, now_ms, waiter| core.add_offsets(now_ms, waiter, id, producer_id, producer_epoch, group_id)).await;
    let code = answer.err().map_or(0, |e: TxnError| e.for_version(header.request_api_version, FIRST_FENCED_VERSION).kafka_error_code());
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

pub(super) async fn end_txn(broker: &Broker, header: &RequestHeader, request: EndTxnRequest) -> EndTxnResponse {
    let id = request.transactional_id.as_str();
    let (producer_id, producer_epoch, commit) = (request.producer_id.0, request.producer_epoch, request.committed);
    let answer = broker.txn_request(id, |core, now_ms, waiter| core.end_txn(now_ms, waiter, id, producer_id, producer_epoch, commit)).await;
    match answer {
        Ok((producer_id, producer_epoch)) => EndTxnResponse::default().with_producer_id(ProducerId(producer_id)).with_producer_epoch(producer_epoch),
        Err(error) => {
            tracing::debug!(transactional_id = id, %error, commit, "EndTxn refused");
            EndTxnResponse::default()
                .with_error_code(error.for_version(header.request_api_version, FIRST_FENCED_VERSION).kafka_error_code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}


/// Kafka's state names, as ListTransactions filters them.
const STATE_NAMES: [&str; 8] = ["Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"];

/// ListTransactions: the ids this broker coordinates, filtered by state,
/// producer id and (v1) how long their transaction has been open. An
/// admin client asks every broker.
pub(super) fn list_transactions(broker: &Broker, request: ListTransactionsRequest) -> ListTransactionsResponse {
    let unknown: Vec<StrBytes> = request.state_filters.iter().filter(|f| !STATE_NAMES.contains(&f.as_str())).cloned().collect();
    let listed = broker.with_txn_led_partitions_loaded(|core, now_ms| {
        core.transactions()
            .filter_map(|(id, meta)| {
                let state = core.visible_state(id).unwrap_or(meta.state);
                let state_ok = request.state_filters.is_empty() || request.state_filters.iter().any(|f| f.as_str() == state.name());
                let producer_ok = request.producer_id_filters.is_empty() || request.producer_id_filters.iter().any(|p| p.0 == meta.producer_id);
                let running_ms = (now_ms as i64).saturating_sub(meta.start_timestamp_ms);
                let duration_ok = request.duration_filter < 0 || (meta.start_timestamp_ms >= 0 && running_ms >= request.duration_filter);
                (state_ok && producer_ok && duration_ok).then(|| {
                    list_transactions_response::TransactionState::default()
                        .with_transactional_id(kafka_protocol::messages::TransactionalId(StrBytes::from_string(id.to_string())))
                        .with_producer_id(ProducerId(meta.producer_id))
                        .with_transaction_state(StrBytes::from_static_str(state.name()))
                })
            })
            .collect::<Vec<_>>()
    });
    match listed {
        Ok(states) => ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(states),
        Err(error) => ListTransactionsResponse::default().with_error_code(error.kafka_error_code()),
    }
}

/// DescribeTransactions: each id's state, producer, timeout, start time
/// and partitions, from its coordinator (NOT_COORDINATOR elsewhere,
/// TRANSACTIONAL_ID_NOT_FOUND for an unknown id).
pub(super) fn describe_transactions(broker: &Broker, request: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .iter()
        .map(|id| {
            let answer = describe_transactions_response::TransactionState::default().with_transactional_id(id.clone());
            let described = broker.with_txn_coordinator(Some(id.as_str()), |core, _| {
                core.check_coordinator(id.as_str())?;
                let meta = core.transaction(id.as_str()).ok_or(TxnError::TransactionalIdNotFound)?;
                Ok((meta.clone(), core.visible_state(id.as_str()).unwrap_or(meta.state)))
            });
            match described.and_then(|d| d) {
                Ok((meta, state)) => {
                    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = std::collections::BTreeMap::new();
                    for (topic, partition) in &meta.partitions {
                        by_topic.entry(topic.clone()).or_default().push(*partition);
                    }
                    let topics = by_topic
                        .into_iter()
                        .map(|(topic, partitions)| describe_transactions_response::TopicData::default().with_topic(TopicName(topic.into())).with_partitions(partitions))
                        .collect();
                    answer
                        .with_transaction_state(StrBytes::from_static_str(state.name()))
                        .with_transaction_timeout_ms(meta.timeout_ms)
                        .with_transaction_start_time_ms(meta.start_timestamp_ms)
                        .with_producer_id(ProducerId(meta.producer_id))
                        .with_producer_epoch(meta.producer_epoch)
                        .with_topics(topics)
                }
                Err(error) => answer.with_error_code(error.kafka_error_code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_cores() {
        use crate::txn::TxnState::*;
        let names: Vec<&str> = [Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Dead, PrepareEpochFence].iter().map(|s| s.name()).collect();
        assert_eq!(names, STATE_NAMES);
    }
}
