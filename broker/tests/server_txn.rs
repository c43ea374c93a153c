//! The transactional APIs through the broker's frame handler, standalone:
//! every advertised version of FindCoordinator (key type 1),
//! InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn and EndTxn answers with Kafka's codes; a second
//! producer instance fences the first; EndTxn retries; a transaction
//! older than its timeout is aborted and its producer fenced;
//! ListTransactions and DescribeTransactions show what the coordinator
//! holds; and the coordinator's state survives a broker restart.
//!
//! Markers go through the WriteTxnMarkers handler of this broker, so they
//! are written as soon as asked; a transaction is seen complete by a
//! retried EndTxn that stops answering CONCURRENT_TRANSACTIONS.

mod common;

use std::sync::Arc;
use std::time::Duration;

use broker::clock::ManualClock;
use broker::config::BrokerConfig;
use broker::disk::RealDisk;
use broker::server::Broker;
use common::{advertised_versions as versions, call, create_topic, fresh_dir, str_bytes as s, topic_name};
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, DescribeTransactionsRequest,
    DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, InitProducerIdRequest,
    InitProducerIdResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const PRODUCER_FENCED: i16 = 90;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;

/// A broker with three `__transaction_state` partitions, a topic `t` of
/// two partitions, and its manual clock.
async fn open(dir: &std::path::Path) -> (Arc<Broker>, Arc<ManualClock>) {
    let mut config = BrokerConfig { data_dir: dir.to_path_buf(), transaction_state_log_num_partitions: 3, offsets_topic_num_partitions: 3, ..BrokerConfig::default() };
    config.txn.abort_timed_out_cleanup_interval_ms = 1_000;
    let clock = ManualClock::new(1_000);
    let broker = Broker::open(config, Arc::new(RealDisk), clock.clone()).unwrap();
    let created = create_topic(&broker, "t", 2).await;
    assert!(created == 0 || created == 36, "topic t: {created}");
    (broker, clock)
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(s(id))
}

async fn init(broker: &Broker, version: i16, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    call(broker, ApiKey::InitProducerId, version, &request).await
}

/// InitProducerId, retried while the coordinator answers CONCURRENT_TRANSACTIONS.
async fn init_retried(broker: &Broker, id: &str) -> InitProducerIdResponse {
    for _ in 0..100 {
        let response = init(broker, 4, id, 60_000).await;
        if response.error_code != CONCURRENT_TRANSACTIONS {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("InitProducerId of {id} stayed CONCURRENT_TRANSACTIONS");
}

/// AddPartitionsToTxn of partitions of `t`: each partition's error code.
async fn add(broker: &Broker, version: i16, id: &str, producer: (i64, i16), partitions: &[i32]) -> Vec<i16> {
    let topics = vec![AddPartitionsToTxnTopic::default().with_name(topic_name("t")).with_partitions(partitions.to_vec())];
    let request = if version >= 4 {
        AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_topics(topics)])
    } else {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id(id))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(topics)
    };
    let response: AddPartitionsToTxnResponse = call(broker, ApiKey::AddPartitionsToTxn, version, &request).await;
    let topics = if version >= 4 {
        assert_eq!(response.results_by_transaction.len(), 1);
        assert_eq!(response.results_by_transaction[0].transactional_id.as_str(), id);
        response.results_by_transaction[0].topic_results.clone()
    } else {
        response.results_by_topic_v3_and_below.clone()
    };
    topics.iter().flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code)).collect()
}

async fn end(broker: &Broker, version: i16, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(commit);
    let response: EndTxnResponse = call(broker, ApiKey::EndTxn, version, &request).await;
    response.error_code
}

/// EndTxn retried while CONCURRENT_TRANSACTIONS (the markers are being written).
async fn end_retried(broker: &Broker, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    for _ in 0..100 {
        let code = end(broker, 3, id, producer, commit).await;
        if code != CONCURRENT_TRANSACTIONS {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("EndTxn of {id} stayed CONCURRENT_TRANSACTIONS");
}

fn producer(response: &InitProducerIdResponse) -> (i64, i16) {
    assert_eq!(response.error_code, 0, "InitProducerId");
    (response.producer_id.0, response.producer_epoch)
}

#[tokio::test]
async fn every_transactional_api_version_answers() {
    let dir = fresh_dir("txn-versions");
    let (broker, _clock) = open(&dir).await;
    // v0 has no key type: only groups.
    for version in versions(ApiKey::FindCoordinator).filter(|&v| v >= 1) {
        let mut request = FindCoordinatorRequest::default().with_key_type(1);
        if version >= 4 {
            request = request.with_coordinator_keys(vec![s("txn-a"), s("txn-b")]);
        } else {
            request = request.with_key(s("txn-a"));
        }
        let response: FindCoordinatorResponse = call(&broker, ApiKey::FindCoordinator, version, &request).await;
        if version >= 4 {
            assert_eq!(response.coordinators.len(), 2);
            assert!(response.coordinators.iter().all(|c| c.error_code == 0 && c.node_id.0 == 1 && c.port == 9092), "v{version}");
        } else {
            assert_eq!((response.error_code, response.node_id.0, response.port), (0, 1, 9092), "v{version}");
        }
    }
    for version in versions(ApiKey::InitProducerId) {
        let id = format!("init-v{version}");
        let first = producer(&init(&broker, version, &id, 60_000).await);
        assert_eq!(first.1, 0, "v{version}");
        let second = producer(&init(&broker, version, &id, 60_000).await);
        assert_eq!(second, (first.0, 1), "v{version}: the epoch is bumped");
        assert_eq!(init(&broker, version, &id, 900_001).await.error_code, INVALID_TRANSACTION_TIMEOUT, "v{version}");
    }
    for version in versions(ApiKey::AddPartitionsToTxn) {
        let id = format!("add-v{version}");
        let p = producer(&init(&broker, 4, &id, 60_000).await);
        assert_eq!(add(&broker, version, &id, p, &[0, 1]).await, vec![0, 0], "v{version}");
        assert_eq!(add(&broker, version, &id, p, &[1]).await, vec![0], "v{version}: already in the transaction");
        assert_eq!(add(&broker, version, &id, (p.0, p.1 + 1), &[1]).await, vec![PRODUCER_FENCED_OR_EPOCH(version)], "v{version}");
        assert_eq!(add(&broker, version, &id, p, &[1, 7]).await, vec![OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION], "v{version}");
        if version >= 4 {
            // KIP-890 part 1: verify-only says which partitions are in the transaction.
            let request = AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
                .with_transactional_id(txn_id(&id))
                .with_producer_id(ProducerId(p.0))
                .with_producer_epoch(p.1)
                .with_verify_only(true)
                .with_topics(vec![AddPartitionsToTxnTopic::default().with_name(topic_name("t")).with_partitions(vec![0])])]);
            let response: AddPartitionsToTxnResponse = call(&broker, ApiKey::AddPartitionsToTxn, version, &request).await;
            assert_eq!(response.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code, 0, "v{version}");
        }
        assert_eq!(end_retried(&broker, &id, p, false).await, 0, "v{version}");
    }
    for version in versions(ApiKey::AddOffsetsToTxn) {
        let id = format!("offsets-v{version}");
        let p = producer(&init(&broker, 4, &id, 60_000).await);
        let request = AddOffsetsToTxnRequest::default()
            .with_transactional_id(txn_id(&id))
            .with_producer_id(ProducerId(p.0))
            .with_producer_epoch(p.1)
            .with_group_id(GroupId(s("g")));
        let response: AddOffsetsToTxnResponse = call(&broker, ApiKey::AddOffsetsToTxn, version, &request).await;
        assert_eq!(response.error_code, 0, "v{version}");
        let stale = request.clone().with_producer_epoch(p.1 + 1);
        let response: AddOffsetsToTxnResponse = call(&broker, ApiKey::AddOffsetsToTxn, version, &stale).await;
        assert_eq!(response.error_code, PRODUCER_FENCED_OR_EPOCH(version), "v{version}");
        assert_eq!(end_retried(&broker, &id, p, true).await, 0, "v{version}");
    }
    for version in versions(ApiKey::EndTxn) {
        let id = format!("end-v{version}");
        let p = producer(&init(&broker, 4, &id, 60_000).await);
        assert_eq!(end(&broker, version, &id, p, true).await, INVALID_TXN_STATE, "v{version}: nothing to end");
        assert_eq!(add(&broker, 3, &id, p, &[0]).await, vec![0]);
        assert_eq!(end(&broker, version, &id, (p.0, p.1 + 1), true).await, PRODUCER_FENCED_OR_EPOCH(version), "v{version}");
        assert_eq!(end(&broker, version, &id, p, true).await, 0, "v{version}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// PRODUCER_FENCED for clients that know it (v2+ of AddPartitionsToTxn,
/// AddOffsetsToTxn, EndTxn), INVALID_PRODUCER_EPOCH before.
#[allow(non_snake_case)]
fn PRODUCER_FENCED_OR_EPOCH(version: i16) -> i16 {
    if version >= 2 {
        PRODUCER_FENCED
    } else {
        INVALID_PRODUCER_EPOCH
    }
}

#[tokio::test]
async fn a_transaction_commits_and_end_txn_retries_succeed() {
    let dir = fresh_dir("txn-commit");
    let (broker, _clock) = open(&dir).await;
    let p = producer(&init(&broker, 4, "orders", 60_000).await);
    assert_eq!(add(&broker, 3, "orders", p, &[0, 1]).await, vec![0, 0]);
    assert_eq!(end(&broker, 3, "orders", p, true).await, 0);
    // A retry succeeds once the markers are written; the other decision never.
    assert_eq!(end_retried(&broker, "orders", p, true).await, 0);
    assert_eq!(end(&broker, 3, "orders", p, false).await, INVALID_TXN_STATE);
    // The next transaction of the same producer.
    assert_eq!(add(&broker, 3, "orders", p, &[1]).await, vec![0]);
    assert_eq!(end(&broker, 3, "orders", p, false).await, 0);
    assert_eq!(end_retried(&broker, "orders", p, false).await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_second_instance_fences_the_first() {
    let dir = fresh_dir("txn-fencing");
    let (broker, _clock) = open(&dir).await;
    let first = producer(&init(&broker, 4, "payments", 60_000).await);
    assert_eq!(add(&broker, 3, "payments", first, &[0]).await, vec![0]);
    // The second instance finds a transaction open: it is aborted with a
    // bumped epoch, and the instance told to retry until that is done.
    assert_eq!(init(&broker, 4, "payments", 60_000).await.error_code, CONCURRENT_TRANSACTIONS);
    let second = producer(&init_retried(&broker, "payments").await);
    assert_eq!(second, (first.0, first.1 + 2), "one bump for the fencing abort, one for the new instance");
    assert_eq!(add(&broker, 3, "payments", first, &[1]).await, vec![PRODUCER_FENCED]);
    assert_eq!(add(&broker, 1, "payments", first, &[1]).await, vec![INVALID_PRODUCER_EPOCH]);
    assert_eq!(end(&broker, 3, "payments", first, true).await, PRODUCER_FENCED);
    assert_eq!(add(&broker, 3, "payments", second, &[1]).await, vec![0]);
    assert_eq!(end(&broker, 3, "payments", second, true).await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_timed_out_transaction_is_aborted() {
    let dir = fresh_dir("txn-timeout");
    let (broker, clock) = open(&dir).await;
    let p = producer(&init(&broker, 4, "slow", 5_000).await);
    assert_eq!(add(&broker, 3, "slow", p, &[0]).await, vec![0]);
    // Past the timeout and the cleanup interval; the ticker runs every 100 ms.
    clock.advance(7_000);
    // Re-adding a partition already in the transaction changes nothing,
    // until the abort fences the producer.
    let mut codes = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        codes = add(&broker, 3, "slow", p, &[0]).await;
        if codes != [0] {
            break;
        }
    }
    assert_eq!(codes, vec![PRODUCER_FENCED], "the abort bumped the epoch: the slow producer is fenced");
    assert_eq!(end(&broker, 3, "slow", p, true).await, PRODUCER_FENCED);
    // A new instance starts past the aborting epoch.
    let next = producer(&init_retried(&broker, "slow").await);
    assert_eq!(next, (p.0, p.1 + 2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn transactional_ids_survive_a_restart() {
    let dir = fresh_dir("txn-restart");
    let first = {
        let (broker, _clock) = open(&dir).await;
        let p = producer(&init(&broker, 4, "durable", 60_000).await);
        assert_eq!(add(&broker, 3, "durable", p, &[0]).await, vec![0]);
        assert_eq!(end(&broker, 3, "durable", p, true).await, 0);
        assert_eq!(end_retried(&broker, "durable", p, true).await, 0);
        broker.shutdown();
        p
    };
    let (broker, _clock) = open(&dir).await;
    assert_eq!(end(&broker, 3, "durable", first, true).await, 0, "the completed commit is remembered");
    let again = producer(&init(&broker, 4, "durable", 60_000).await);
    assert_eq!(again, (first.0, first.1 + 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn list_and_describe_transactions() {
    let dir = fresh_dir("txn-admin");
    let (broker, clock) = open(&dir).await;
    let open_one = producer(&init(&broker, 4, "open-one", 60_000).await);
    assert_eq!(add(&broker, 3, "open-one", open_one, &[0, 1]).await, vec![0, 0]);
    let idle = producer(&init(&broker, 4, "idle-one", 60_000).await);
    clock.advance(2_000);
    for version in versions(ApiKey::ListTransactions) {
        let all: ListTransactionsResponse = call(&broker, ApiKey::ListTransactions, version, &ListTransactionsRequest::default().with_duration_filter(-1)).await;
        assert_eq!(all.error_code, 0, "v{version}");
        let mut listed: Vec<(String, i64, String)> =
            all.transaction_states.iter().map(|t| (t.transactional_id.as_str().to_string(), t.producer_id.0, t.transaction_state.as_str().to_string())).collect();
        listed.sort();
        assert_eq!(listed, vec![("idle-one".into(), idle.0, "Empty".into()), ("open-one".into(), open_one.0, "Ongoing".into())], "v{version}");
        let request = ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Bogus")]).with_duration_filter(-1);
        let ongoing: ListTransactionsResponse = call(&broker, ApiKey::ListTransactions, version, &request).await;
        assert_eq!(ongoing.transaction_states.len(), 1, "v{version}");
        assert_eq!(ongoing.unknown_state_filters.iter().map(|f| f.as_str()).collect::<Vec<_>>(), vec!["Bogus"], "v{version}");
        if version >= 1 {
            let request = ListTransactionsRequest::default().with_duration_filter(5_000);
            let long: ListTransactionsResponse = call(&broker, ApiKey::ListTransactions, version, &request).await;
            assert!(long.transaction_states.is_empty(), "v{version}: nothing open for 5 s");
        }
    }
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("open-one"), txn_id("missing")]);
    let described: DescribeTransactionsResponse = call(&broker, ApiKey::DescribeTransactions, 0, &request).await;
    let open_state = &described.transaction_states[0];
    assert_eq!((open_state.error_code, open_state.transaction_state.as_str()), (0, "Ongoing"));
    assert_eq!((open_state.producer_id.0, open_state.producer_epoch, open_state.transaction_timeout_ms), (open_one.0, open_one.1, 60_000));
    assert_eq!(open_state.topics.len(), 1);
    assert_eq!(open_state.topics[0].partitions, vec![0, 1]);
    assert_eq!(described.transaction_states[1].error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND");
    let _ = std::fs::remove_dir_all(&dir);
}
