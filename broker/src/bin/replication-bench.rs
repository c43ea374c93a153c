//! Replication benchmark on loopback: three `dlog-broker` processes (both
//! roles) started next to this binary, one run. Prints one line per figure:
//! `BENCH <name> <value> <unit>`.
//!
//! ```text
//! cargo build --release -p dlog-broker --bin dlog-broker --bin replication-bench
//! target/release/replication-bench      # REPLICATION_BENCH_MIB=64 by default
//! ```
//!
//! Figures, measured in the same run on the same cluster, like for like:
//! produce throughput of 1 KiB records (16 per request, one request in
//! flight) to a topic with replication factor 3 and acks=all
//! (`min.insync.replicas=2`), the same to a topic with replication factor 1
//! and acks=1, their ratio (what replication costs), and the
//! produce-to-consume latency (p50, p99) of single acks=all records on the
//! replicated topic, read by a consumer polling the leader. Wall-clock
//! timing is the point of a benchmark, so this binary, unlike broker code,
//! reads `Instant::now`.

#![allow(clippy::disallowed_methods)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::client::{Cluster, Consumer, ConsumerConfig, Producer, ProducerConfig, TopicPartition};
use broker::clock::{Clock, SystemClock};
use bytes::Bytes;

const NODES: usize = 3;
const RECORD_BYTES: usize = 1024;
const RECORDS_PER_REQUEST: usize = 16;
const LATENCY_SAMPLES: usize = 2_000;

fn bench(name: &str, value: f64, unit: &str) {
    println!("BENCH {name} {value:.3} {unit}");
}

/// The processes, killed on drop.
struct Nodes {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

fn start(dir: &Path) -> anyhow::Result<(Nodes, Vec<String>)> {
    let exe = std::env::current_exe()?;
    let broker_bin = exe.with_file_name("dlog-broker");
    anyhow::ensure!(broker_bin.exists(), "{} not found: build it first", broker_bin.display());
    let ports = free_ports(3 * NODES);
    let voters = |offset: usize| {
        (0..NODES).map(|i| format!("{}@127.0.0.1:{}", i + 1, ports[3 * i + offset])).collect::<Vec<_>>().join(",")
    };
    let (raft_voters, api_voters) = (voters(1), voters(2));
    let mut nodes = Nodes { children: Vec::new(), dir: dir.to_path_buf() };
    let mut bootstrap = Vec::new();
    for i in 0..NODES {
        let id = i + 1;
        let listen = format!("127.0.0.1:{}", ports[3 * i]);
        let settings = [
            "process.roles=broker,controller".to_string(),
            format!("node.id={id}"),
            format!("controller.raft.listen=127.0.0.1:{}", ports[3 * i + 1]),
            format!("controller.api.listen=127.0.0.1:{}", ports[3 * i + 2]),
            format!("controller.raft.voters={raft_voters}"),
            format!("controller.quorum.voters={api_voters}"),
            // Kafka's defaults: no fsync per batch, durability by replication.
            "log.flush=never".to_string(),
            "min.insync.replicas=2".to_string(),
            "raft.tick.ms=50".to_string(),
        ];
        let mut command = Command::new(&broker_bin);
        command.args(["--listen", &listen, "--data-dir", &dir.join(format!("node-{id}")).display().to_string()]);
        for setting in &settings {
            command.args(["--config", setting]);
        }
        nodes.children.push(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
        bootstrap.push(listen);
    }
    Ok((nodes, bootstrap))
}

async fn create_topic(bootstrap: &str, topic: &str, replication_factor: i16) -> anyhow::Result<()> {
    let mut cluster = Cluster::new(bootstrap, "bench-admin", 5_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if cluster.create_topic_replicated(topic, 1, replication_factor).await.is_ok() {
            // Wait for a leader.
            let tp = TopicPartition::new(topic, 0);
            while Instant::now() < deadline {
                if cluster.refresh(&[topic.to_string()]).await.is_ok() && matches!(cluster.leader(&tp).await, Ok(Some(_))) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "could not create {topic}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn producer(bootstrap: &str, acks: i16) -> Producer {
    Producer::new(
        ProducerConfig { bootstrap: bootstrap.into(), acks, request_timeout_ms: 10_000, ..ProducerConfig::default() },
        Box::new(|| SystemClock.now_ms()),
    )
}

/// Produces `total_bytes` of 1 KiB records to `topic`; returns MiB/s.
async fn throughput(bootstrap: &str, topic: &str, acks: i16, total_bytes: usize) -> anyhow::Result<f64> {
    let mut producer = producer(bootstrap, acks);
    let tp = TopicPartition::new(topic, 0);
    let records: Vec<(Option<Bytes>, Option<Bytes>)> =
        (0..RECORDS_PER_REQUEST).map(|_| (None, Some(Bytes::from(vec![b'r'; RECORD_BYTES])))).collect();
    // One warm-up request (connections, metadata).
    producer.send_batch(&tp, &records).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let requests = total_bytes / (RECORD_BYTES * RECORDS_PER_REQUEST);
    let started = Instant::now();
    for _ in 0..requests {
        producer.send_batch(&tp, &records).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((requests * RECORDS_PER_REQUEST * RECORD_BYTES) as f64 / (1024.0 * 1024.0) / secs)
}

/// Sends single acks=all records and times each until a consumer of the
/// leader returns it; returns the sorted latencies in microseconds.
async fn latencies(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<f64>> {
    let origin = Arc::new(Instant::now());
    let tp = TopicPartition::new(topic, 0);
    let consumer_task = {
        let (bootstrap, tp, origin) = (bootstrap.to_string(), tp.clone(), origin.clone());
        tokio::spawn(async move {
            let mut consumer = Consumer::new(ConsumerConfig {
                bootstrap,
                fetch_wait_ms_max: 500,
                request_timeout_ms: 10_000,
                ..ConsumerConfig::default()
            });
            consumer.assign(std::slice::from_ref(&tp));
            let mut seen = Vec::with_capacity(LATENCY_SAMPLES);
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen.len() < LATENCY_SAMPLES && Instant::now() < deadline {
                for record in consumer.poll().await.unwrap_or_default() {
                    let sent_us: Option<f64> = record.value.as_deref().and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.trim().parse().ok());
                    if let Some(sent_us) = sent_us {
                        seen.push(origin.elapsed().as_secs_f64() * 1e6 - sent_us);
                    }
                }
            }
            seen
        })
    };
    let mut producer = producer(bootstrap, -1);
    for _ in 0..LATENCY_SAMPLES {
        // The send time, padded to 1 KiB.
        let value = format!("{:<width$.0}", origin.elapsed().as_secs_f64() * 1e6, width = RECORD_BYTES);
        producer.send(&tp, None, Some(Bytes::from(value))).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut seen = consumer_task.await?;
    anyhow::ensure!(seen.len() == LATENCY_SAMPLES, "the consumer saw {} of {LATENCY_SAMPLES} records", seen.len());
    seen.sort_by(f64::total_cmp);
    Ok(seen)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mib: usize = std::env::var("REPLICATION_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let dir = std::env::temp_dir().join(format!("dlog-replication-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (_nodes, bootstrap) = start(&dir)?;
    let bootstrap = bootstrap.join(",");
    create_topic(&bootstrap, "bench-rf3", 3).await?;
    create_topic(&bootstrap, "bench-rf1", 1).await?;
    let replicated = throughput(&bootstrap, "bench-rf3", -1, mib << 20).await?;
    let single = throughput(&bootstrap, "bench-rf1", 1, mib << 20).await?;
    bench("produce_rf3_acks_all", replicated, "MiB/s");
    bench("produce_rf1_acks_1", single, "MiB/s");
    bench("produce_rf3_acks_all_ratio_to_rf1_acks_1", replicated / single, "ratio");
    let sorted = latencies(&bootstrap, "bench-rf3").await?;
    bench("produce_to_consume_rf3_p50", percentile(&sorted, 0.50) / 1e3, "ms");
    bench("produce_to_consume_rf3_p99", percentile(&sorted, 0.99) / 1e3, "ms");
    Ok(())
}
