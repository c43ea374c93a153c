//! Our own Kafka client (`broker::client`) over real TCP against the real
//! `dlog-broker` binary: the simulation's workloads use this client inside
//! madsim, so this shows the same bytes work on a real network. A topic with
//! 3 partitions is created with `Cluster::create_topic`, 300 records are
//! produced with acks=-1, and the `Consumer` reads every one back exactly
//! once, in offset order per partition; `seek` then re-reads from an offset.
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker::client::{Cluster, ConsumedRecord, Consumer, ConsumerConfig, Producer, ProducerConfig, TopicPartition};
use broker::clock::{Clock, SystemClock};
use dlog_tests::workspace_binary;

const PARTITIONS: i32 = 3;
const RECORDS_PER_PARTITION: i64 = 100;
const BATCH_RECORDS: usize = 25;
/// Every phase of the test must finish within this; a hang is a failure.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker process and its data directory, both gone on drop (also when
/// an assertion fails half-way).
struct BrokerProcess {
    child: Child,
    dir: PathBuf,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_broker(port: u16, dir: &Path) -> BrokerProcess {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::File::create(dir.join("broker.log")).unwrap();
    let child = Command::new(workspace_binary("dlog-broker"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("dlog-broker starts");
    let mut broker = BrokerProcess { child, dir: dir.into() };
    for _ in 0..400 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return broker;
        }
        if let Ok(Some(status)) = broker.child.try_wait() {
            panic!("dlog-broker exited with {status}; see {}", dir.join("broker.log").display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dlog-broker did not listen on {port} within 20 s");
}

fn value_of(tp: &TopicPartition, index: i64) -> String {
    format!("{}-{}-value-{index:03}", tp.topic, tp.partition)
}

/// Polls until `want` records came back or `polls_max` polls are done.
async fn poll_until(consumer: &mut Consumer, want: usize, polls_max: usize) -> Vec<ConsumedRecord> {
    let mut records = Vec::new();
    for _ in 0..polls_max {
        if records.len() >= want {
            break;
        }
        records.extend(consumer.poll().await.expect("poll"));
    }
    records
}

/// Offsets and values per partition, in the order they were returned.
fn by_partition(records: &[ConsumedRecord]) -> BTreeMap<TopicPartition, Vec<(i64, String)>> {
    let mut out: BTreeMap<TopicPartition, Vec<(i64, String)>> = BTreeMap::new();
    for record in records {
        let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
        out.entry(record.tp.clone()).or_default().push((record.offset, value));
    }
    out
}

#[tokio::test]
async fn rust_client_produces_and_consumes_over_tcp() {
    let dir = std::env::temp_dir().join(format!("dlog-rust-client-tcp-{}", std::process::id()));
    let port = free_port();
    let _broker = start_broker(port, &dir).await;
    let bootstrap = format!("127.0.0.1:{port}");
    let topic = "rust-client-tcp";
    let partitions: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(topic, p)).collect();

    // Created explicitly: an auto-created topic would have 1 partition.
    let mut cluster = Cluster::new(&bootstrap, "rust-client-tcp-admin", 5_000);
    tokio::time::timeout(PHASE_TIMEOUT, async {
        cluster.create_topic(topic, PARTITIONS).await.expect("create topic");
        cluster.refresh(&[topic.to_string()]).await.expect("metadata");
    })
    .await
    .expect("topic creation within 30 s");
    assert_eq!(cluster.partition_count(topic), Some(PARTITIONS), "Metadata shows the 3 partitions created");

    let mut producer = Producer::new(
        ProducerConfig {
            bootstrap: bootstrap.clone(),
            acks: -1,
            batch_records_max: BATCH_RECORDS,
            ..ProducerConfig::default()
        },
        Box::new(|| SystemClock.now_ms()),
    );
    tokio::time::timeout(PHASE_TIMEOUT, async {
        for tp in &partitions {
            for index in 0..RECORDS_PER_PARTITION {
                let key = Some(format!("key-{index}").into());
                if !producer.enqueue(tp.clone(), key, Some(value_of(tp, index).into())) {
                    continue;
                }
                // A full batch: its base offset says where it landed.
                for (sent_tp, outcome) in producer.flush().await {
                    let outcome = outcome.unwrap_or_else(|e| panic!("produce to {sent_tp}: {e}"));
                    let expected_base = index + 1 - BATCH_RECORDS as i64;
                    assert_eq!(outcome.base_offset, Some(expected_base), "batches of {sent_tp} land back to back");
                }
            }
        }
        assert!(producer.flush().await.is_empty(), "every record was sent in a full batch");
    })
    .await
    .expect("producing within 30 s");

    let mut consumer = Consumer::new(ConsumerConfig {
        bootstrap: bootstrap.clone(),
        fetch_wait_ms_max: 100,
        ..ConsumerConfig::default()
    });
    consumer.assign(&partitions);
    let total = (RECORDS_PER_PARTITION * i64::from(PARTITIONS)) as usize;
    let records = tokio::time::timeout(PHASE_TIMEOUT, poll_until(&mut consumer, total, 200))
        .await
        .expect("consuming within 30 s");
    // Once caught up, another poll must not return anything again.
    let again = tokio::time::timeout(PHASE_TIMEOUT, consumer.poll()).await.expect("poll within 30 s").expect("poll");
    assert!(again.is_empty(), "a caught-up consumer got {} records again", again.len());

    let consumed = by_partition(&records);
    assert_eq!(consumed.len(), partitions.len(), "records came from every partition");
    for tp in &partitions {
        let expected: Vec<(i64, String)> = (0..RECORDS_PER_PARTITION).map(|i| (i, value_of(tp, i))).collect();
        assert_eq!(consumed[tp], expected, "{tp}: every record exactly once, in offset order");
        assert_eq!(consumer.position(tp), Some(RECORDS_PER_PARTITION));
        assert_eq!(consumer.high_watermark(tp), Some(RECORDS_PER_PARTITION));
    }
    assert!(
        records.iter().all(|r| r.key.as_deref() == Some(format!("key-{}", r.offset).as_bytes())),
        "keys come back with their records"
    );

    // Re-read the tail of one partition from an offset in its middle.
    let tp = &partitions[1];
    let seek_to = 60;
    consumer.seek(tp, seek_to);
    let reread = tokio::time::timeout(PHASE_TIMEOUT, poll_until(&mut consumer, (RECORDS_PER_PARTITION - seek_to) as usize, 100))
        .await
        .expect("re-reading within 30 s");
    let expected: Vec<(i64, String)> = (seek_to..RECORDS_PER_PARTITION).map(|i| (i, value_of(tp, i))).collect();
    assert_eq!(
        by_partition(&reread).remove(tp).unwrap_or_default(),
        expected,
        "after seek({seek_to}) the consumer reads {tp} from {seek_to} on"
    );
    assert!(reread.iter().all(|r| &r.tp == tp), "seek on one partition re-reads only that partition");
}
