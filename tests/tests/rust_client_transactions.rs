//! Our own transactional producer (`broker::client::TransactionalProducer`)
//! over real TCP against the real `dlog-broker` binary, the client the
//! simulation's `txn-chaos` workload uses: a transaction over two
//! partitions commits, the next aborts; a read_committed `Consumer` sees
//! exactly the committed records and a read_uncommitted one sees both; a
//! second producer with the same transactional id fences the first; and
//! offsets sent inside a committed transaction become the group's
//! committed offsets, while those of an aborted one do not.
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::time::Duration;

use broker::client::{Consumer, ConsumerConfig, GroupMember, GroupMemberConfig, ProducerConfig, TopicPartition, TransactionError, TransactionalProducer, TransactionalProducerConfig};
use broker::clock::{Clock, SystemClock};
use bytes::Bytes;
use dlog_tests::{free_port, start_standalone_broker};

const TOPIC: &str = "rust-txn";
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);

fn producer(bootstrap: &str, transactional_id: &str) -> TransactionalProducer {
    let config = TransactionalProducerConfig::new(ProducerConfig { bootstrap: bootstrap.into(), ..ProducerConfig::default() }, transactional_id);
    TransactionalProducer::new(config, Box::new(|| SystemClock.now_ms()))
}

async fn transaction(producer: &mut TransactionalProducer, values: &[&str], commit: bool) -> Result<(), TransactionError> {
    producer.begin_transaction()?;
    for (index, value) in values.iter().enumerate() {
        producer.send(&TopicPartition::new(TOPIC, index as i32 % 2), None, Some(Bytes::from(value.to_string()))).await?;
    }
    if commit {
        producer.commit_transaction().await
    } else {
        producer.abort_transaction().await
    }
}

/// Every value of both partitions, read at `isolation_level`.
async fn read_all(bootstrap: &str, isolation_level: i8) -> BTreeMap<i32, Vec<String>> {
    let mut consumer = Consumer::new(ConsumerConfig { bootstrap: bootstrap.into(), isolation_level, fetch_wait_ms_max: 100, ..ConsumerConfig::default() });
    let partitions = [TopicPartition::new(TOPIC, 0), TopicPartition::new(TOPIC, 1)];
    consumer.assign(&partitions);
    let mut read: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut empty_polls = 0;
    while empty_polls < 5 {
        let records = consumer.poll().await.expect("poll");
        if records.is_empty() {
            empty_polls += 1;
        }
        for record in records {
            read.entry(record.tp.partition).or_default().push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    read
}

fn by_partition(values: &[&[&str]]) -> BTreeMap<i32, Vec<String>> {
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for transaction in values {
        for (index, value) in transaction.iter().enumerate() {
            out.entry(index as i32 % 2).or_default().push(value.to_string());
        }
    }
    out
}

#[tokio::test]
async fn rust_transactional_producer_commits_aborts_fences_and_commits_offsets() {
    let dir = std::env::temp_dir().join(format!("dlog-rust-txn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let _broker = start_standalone_broker(port, &dir);
    let bootstrap = format!("127.0.0.1:{port}");
    tokio::time::timeout(PHASE_TIMEOUT, async {
        let mut first = producer(&bootstrap, "rust-txn");
        first.cluster().create_topic(TOPIC, 2).await.expect("topic created");
        first.init_transactions().await.expect("init");
        let committed: &[&str] = &["c0", "c1", "c2", "c3"];
        let aborted: &[&str] = &["a0", "a1", "a2", "a3"];
        transaction(&mut first, committed, true).await.expect("commit");
        transaction(&mut first, aborted, false).await.expect("abort");
        assert_eq!(read_all(&bootstrap, 1).await, by_partition(&[committed]), "read_committed sees the committed transaction only");
        assert_eq!(read_all(&bootstrap, 0).await, by_partition(&[committed, aborted]), "read_uncommitted sees both");

        // Offsets inside transactions: visible once committed, never when aborted.
        let input = TopicPartition::new(TOPIC, 0);
        first.begin_transaction().unwrap();
        first.send_offsets_to_transaction(&BTreeMap::from([(input.clone(), 2)]), "rust-txn-group", None).await.expect("offsets sent");
        first.commit_transaction().await.expect("offsets committed");
        first.begin_transaction().unwrap();
        first.send_offsets_to_transaction(&BTreeMap::from([(input.clone(), 4)]), "rust-txn-group", None).await.expect("offsets sent");
        first.abort_transaction().await.expect("offsets aborted");
        let mut group = GroupMember::new(GroupMemberConfig {
            bootstrap: bootstrap.clone(),
            client_id: "rust-txn-check".into(),
            group_id: "rust-txn-group".into(),
            topics: vec![TOPIC.into()],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            request_timeout_ms: 5_000,
            assignors: Vec::new(),
        });
        let offsets = group.committed(std::slice::from_ref(&input)).await.expect("offset fetch");
        assert_eq!(offsets.get(&input), Some(&2), "the committed transaction's offset, not the aborted one's");

        // A second producer with the same id fences the first.
        let mut second = producer(&bootstrap, "rust-txn");
        second.init_transactions().await.expect("second init");
        let fenced = transaction(&mut first, &["z0", "z1"], true).await;
        assert!(matches!(fenced, Err(TransactionError::Fenced(_))), "the first producer is fenced, got {fenced:?}");
        let later: &[&str] = &["d0", "d1"];
        transaction(&mut second, later, true).await.expect("the second producer commits");
        assert_eq!(read_all(&bootstrap, 1).await, by_partition(&[committed, later]), "nothing of the fenced producer is visible");
    })
    .await
    .expect("the test finishes in time");
    let _ = std::fs::remove_dir_all(&dir);
}
