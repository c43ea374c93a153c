//! A real three-node cluster: three `dlog-broker` processes on loopback,
//! each with `process.roles=broker,controller`, so three Raft controllers
//! and three brokers. Through our Rust client: a topic is created, every
//! partition gets a leader, records produced to each leader come back. Then
//! one node (not the leader of the partition under test) is killed with
//! SIGKILL, and the two left still form a quorum: a new topic can be
//! created, and the partition under test still takes and serves records.
//! Last, the whole cluster is killed and started again: topics and
//! acknowledged records are still there.
#![cfg(not(madsim))]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker::client::{Cluster, ConsumedRecord, Consumer, ConsumerConfig, Producer, ProducerConfig, TopicPartition};
use broker::clock::{Clock, SystemClock};
use dlog_tests::workspace_binary;

const NODES: usize = 3;
const PARTITIONS: i32 = 3;
const RECORDS_PER_PARTITION: i64 = 10;
/// Bound on each wait for the cluster (election, registration, topic
/// creation); generous for a loaded 2-core machine, far below a hang.
const WAIT_TIMEOUT: Duration = Duration::from_secs(20);

/// One node's ports.
#[derive(Debug, Clone, Copy)]
struct NodePorts {
    broker: u16,
    raft: u16,
    api: u16,
}

/// The running processes; every one is killed on drop (also when an
/// assertion fails half-way), then the data directories are removed.
struct RealCluster {
    dir: PathBuf,
    ports: Vec<NodePorts>,
    /// Each node's command line, to start it again after a kill.
    arguments: Vec<Vec<String>>,
    children: Vec<Option<Child>>,
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("node logs kept in {}", self.dir.display());
        }
    }
}

/// `count` distinct free loopback ports: all are held at once while
/// chosen, so no two are the same.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl RealCluster {
    async fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[]).await
    }

    /// Starts the cluster with `extra` settings (`KEY=VALUE`) on every node.
    async fn start_with(dir: &Path, extra: &[&str]) -> Self {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let ports: Vec<NodePorts> = free_ports(3 * NODES)
            .chunks(3)
            .map(|p| NodePorts {
                broker: p[0],
                raft: p[1],
                api: p[2],
            })
            .collect();
        let voters = |port: fn(&NodePorts) -> u16| {
            ports
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{}@127.0.0.1:{}", i + 1, port(p)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let raft_voters = voters(|p| p.raft);
        let api_voters = voters(|p| p.api);
        let mut arguments = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let id = i + 1;
            let mut args = vec![
                "--listen".to_string(),
                format!("127.0.0.1:{}", p.broker),
                "--data-dir".to_string(),
                dir.join(format!("node-{id}")).display().to_string(),
            ];
            for setting in [
                "process.roles=broker,controller".to_string(),
                format!("node.id={id}"),
                format!("controller.raft.listen=127.0.0.1:{}", p.raft),
                format!("controller.api.listen=127.0.0.1:{}", p.api),
                format!("controller.raft.voters={raft_voters}"),
                format!("controller.quorum.voters={api_voters}"),
                // Faster elections and heartbeats than the defaults keep the
                // test short; the ratios stay the production ones.
                "raft.tick.ms=50".to_string(),
                "broker.heartbeat.interval.ms=500".to_string(),
                "broker.session.timeout.ms=4000".to_string(),
            ]
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            {
                args.extend(["--config".to_string(), setting]);
            }
            arguments.push(args);
        }
        let mut cluster = Self {
            dir: dir.into(),
            ports,
            arguments,
            children: (0..NODES).map(|_| None).collect(),
        };
        for node in 0..NODES {
            cluster.spawn(node);
        }
        for node in 0..NODES {
            cluster.wait_listening(node).await;
        }
        cluster
    }

    /// Starts `node`; stderr is appended to `<dir>/node-N.log`, so a
    /// restarted node's log follows its first life's.
    fn spawn(&mut self, node: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node-{}.log", node + 1)))
            .unwrap();
        let child = Command::new(workspace_binary("dlog-broker"))
            .args(&self.arguments[node])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dlog-broker starts");
        self.children[node] = Some(child);
    }

    /// Starts a killed node again on the same ports and data directory.
    async fn restart(&mut self, node: usize) {
        self.spawn(node);
        self.wait_listening(node).await;
    }

    async fn wait_listening(&mut self, node: usize) {
        let port = self.ports[node].broker;
        for _ in 0..400 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.children[node].as_mut().map(Child::try_wait) {
                panic!("node {} exited with {status}; see {}", node + 1, self.dir.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {} did not listen on {port} within 20 s", node + 1);
    }

    fn bootstrap(&self, node: usize) -> String {
        format!("127.0.0.1:{}", self.ports[node].broker)
    }

    /// The node whose broker listens at `addr`.
    fn node_at(&self, addr: &str) -> usize {
        (0..NODES)
            .find(|&node| self.bootstrap(node) == addr)
            .unwrap_or_else(|| panic!("{addr} is no node's broker address"))
    }

    /// SIGKILL: no flush, no goodbye to the quorum.
    fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.children[node].take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }
}

/// Creates `topic` through `bootstrap`, retrying while the quorum elects a
/// leader or the brokers register; fails after [`WAIT_TIMEOUT`].
async fn create_topic(bootstrap: &str, topic: &str) {
    let mut cluster = Cluster::new(bootstrap, "real-cluster-admin", 5_000);
    let mut last_error = String::new();
    let attempt = async {
        loop {
            // An earlier attempt whose outcome was unknown may have created
            // it: create_topic takes TOPIC_ALREADY_EXISTS as success.
            match cluster.create_topic(topic, PARTITIONS).await {
                Ok(()) => return,
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    if tokio::time::timeout(WAIT_TIMEOUT, attempt).await.is_err() {
        panic!("creating {topic} through {bootstrap} did not succeed within 20 s: {last_error}");
    }
}

/// Waits until Metadata (read from the quorum through `bootstrap`) shows
/// every partition of `topic` with a leader; returns the leaders' addresses.
async fn wait_for_leaders(bootstrap: &str, topic: &str) -> Vec<String> {
    let mut cluster = Cluster::new(bootstrap, "real-cluster-metadata", 5_000);
    let wait = async {
        loop {
            if cluster.refresh(&[topic.to_string()]).await.is_ok() && cluster.partition_count(topic) == Some(PARTITIONS) {
                let mut leaders = Vec::new();
                for partition in 0..PARTITIONS {
                    if let Ok(Some(leader)) = cluster.leader(&TopicPartition::new(topic, partition)).await {
                        leaders.push(leader);
                    }
                }
                if leaders.len() == PARTITIONS as usize {
                    return leaders;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(WAIT_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("Metadata did not show a leader for every partition of {topic} within 20 s"))
}

fn value_of(tp: &TopicPartition, index: i64) -> String {
    format!("{tp}-record-{index}")
}

/// Produces records `from..to` of `tp` with acks=-1 through `bootstrap`.
async fn produce(bootstrap: &str, tp: &TopicPartition, from: i64, to: i64) {
    let mut producer = Producer::new(
        ProducerConfig {
            bootstrap: bootstrap.into(),
            acks: -1,
            ..ProducerConfig::default()
        },
        Box::new(|| SystemClock.now_ms()),
    );
    let send = async {
        for index in from..to {
            let outcome = producer
                .send(tp, None, Some(value_of(tp, index).into()))
                .await
                .unwrap_or_else(|e| panic!("produce {index} to {tp}: {e}"));
            assert_eq!(outcome.base_offset, Some(index), "{tp}: record {index} lands at offset {index}");
        }
    };
    tokio::time::timeout(WAIT_TIMEOUT, send)
        .await
        .unwrap_or_else(|_| panic!("producing to {tp} took over 20 s"));
}

/// Reads `tp` from offset `from` until `to`, through `bootstrap`.
async fn consume(bootstrap: &str, tp: &TopicPartition, from: i64, to: i64) -> Vec<(i64, String)> {
    let mut consumer = Consumer::new(ConsumerConfig {
        bootstrap: bootstrap.into(),
        fetch_wait_ms_max: 100,
        ..ConsumerConfig::default()
    });
    consumer.assign(std::slice::from_ref(tp));
    consumer.seek(tp, from);
    let mut records: Vec<ConsumedRecord> = Vec::new();
    let read = async {
        while consumer.position(tp).is_none_or(|position| position < to) {
            records.extend(consumer.poll().await.unwrap_or_else(|e| panic!("poll {tp}: {e}")));
        }
    };
    tokio::time::timeout(WAIT_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| panic!("consuming {tp} up to {to} took over 20 s"));
    records
        .into_iter()
        .map(|r| (r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()))
        .collect()
}

fn expected(tp: &TopicPartition, from: i64, to: i64) -> Vec<(i64, String)> {
    (from..to).map(|i| (i, value_of(tp, i))).collect()
}

#[tokio::test]
async fn three_node_cluster_survives_one_sigkill_and_a_full_restart() {
    let dir = std::env::temp_dir().join(format!("dlog-real-cluster-{}", std::process::id()));
    let mut cluster = RealCluster::start(&dir).await;

    // Any node forwards CreateTopics to the controller leader.
    let topic = "real-cluster";
    create_topic(&cluster.bootstrap(0), topic).await;
    let leaders = wait_for_leaders(&cluster.bootstrap(1), topic).await;

    // Each partition is written on its leader and read back from it.
    for partition in 0..PARTITIONS {
        let tp = TopicPartition::new(topic, partition);
        produce(&cluster.bootstrap(2), &tp, 0, RECORDS_PER_PARTITION).await;
        assert_eq!(
            consume(&cluster.bootstrap(0), &tp, 0, RECORDS_PER_PARTITION).await,
            expected(&tp, 0, RECORDS_PER_PARTITION),
            "{tp}: what was produced comes back, in order, once"
        );
    }

    // Kill a node that does not lead the partition under test: its
    // controller (perhaps the Raft leader) and its broker go at once.
    let tested = TopicPartition::new(topic, 0);
    let survivor = cluster.node_at(&leaders[0]);
    let victim = (0..NODES).find(|&node| node != survivor).expect("three nodes");
    cluster.kill(victim);

    // Two of three controllers are a majority: metadata writes go on.
    let after = "real-cluster-after-kill";
    create_topic(&cluster.bootstrap(survivor), after).await;
    // Both surviving nodes read it from the quorum (linearizable reads).
    for node in (0..NODES).filter(|&node| node != victim) {
        let mut metadata = Cluster::new(&cluster.bootstrap(node), "real-cluster-metadata", 5_000);
        tokio::time::timeout(WAIT_TIMEOUT, metadata.refresh(&[after.to_string()]))
            .await
            .expect("metadata within 20 s")
            .expect("metadata");
        assert_eq!(
            metadata.partition_count(after),
            Some(PARTITIONS),
            "node {}: a topic created with 2 of 3 controllers is in the metadata",
            node + 1
        );
    }

    // And the partition under test, whose leader lives, still works.
    produce(&cluster.bootstrap(survivor), &tested, RECORDS_PER_PARTITION, 2 * RECORDS_PER_PARTITION).await;
    assert_eq!(
        consume(&cluster.bootstrap(survivor), &tested, 0, 2 * RECORDS_PER_PARTITION).await,
        expected(&tested, 0, 2 * RECORDS_PER_PARTITION),
        "{tested}: records from before and after the kill, in order, once"
    );

    // Power off the rest, then start all three again: the controllers
    // recover the metadata from their Raft logs in <data-dir>/__raft, the
    // brokers their partition logs.
    for node in 0..NODES {
        cluster.kill(node);
    }
    for node in 0..NODES {
        cluster.restart(node).await;
    }
    let leaders_after_restart = wait_for_leaders(&cluster.bootstrap(victim), topic).await;
    assert_eq!(leaders_after_restart[0], leaders[0], "{tested} keeps its only replica as leader");
    wait_for_leaders(&cluster.bootstrap(victim), after).await;
    assert_eq!(
        consume(&cluster.bootstrap(victim), &tested, 0, 2 * RECORDS_PER_PARTITION).await,
        expected(&tested, 0, 2 * RECORDS_PER_PARTITION),
        "{tested}: every acknowledged record survives SIGKILL of the whole cluster"
    );
}

/// A real Kafka client (kafka-python, installed by `make deps`) deletes a
/// topic through any broker of the cluster and creates it again; the new
/// incarnation starts empty at offset 0 on every broker (each broker ties
/// its local partition data to the topic id, `partition.metadata`).
#[tokio::test]
async fn kafka_python_deletes_and_recreates_a_topic_in_a_three_node_cluster() {
    let dir = std::env::temp_dir().join(format!("dlog-real-cluster-python-{}", std::process::id()));
    let cluster = RealCluster::start(&dir).await;
    let bootstrap: Vec<String> = (0..NODES).map(|node| cluster.bootstrap(node)).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/delete_recreate.py");
    // The nodes are other processes: blocking this test's thread is harmless.
    let output = Command::new("python3").arg(&script).arg(bootstrap.join(",")).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().last() == Some("ok"),
        "kafka-python script failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a client script that drives faults by printing `KILL <node id>`
/// (answered by killing the node and creating `control/killed`) and
/// `RESTART <node id>` (`control/restarted`), and must end with `ok`:
/// every line it printed.
async fn run_control_script(cluster: &mut RealCluster, dir: &Path, script: &str, bootstrap: &[String]) -> Vec<String> {
    use std::io::BufRead;
    let control = dir.join("control");
    std::fs::create_dir_all(&control).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join(script);
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(bootstrap.join(","))
        .arg(&control)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().expect("piped");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("script-stdout".into())
        .spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    let mut seen = Vec::new();
    let script_deadline = Duration::from_secs(180);
    let drive = async {
        while let Some(line) = lines.recv().await {
            seen.push(line.clone());
            if let Some(id) = line.strip_prefix("KILL ") {
                let node: usize = id.parse::<usize>().expect("a node id") - 1;
                cluster.kill(node);
                std::fs::write(control.join("killed"), b"").unwrap();
            } else if let Some(id) = line.strip_prefix("RESTART ") {
                let node: usize = id.parse::<usize>().expect("a node id") - 1;
                cluster.restart(node).await;
                std::fs::write(control.join("restarted"), b"").unwrap();
            }
        }
    };
    let finished = tokio::time::timeout(script_deadline, drive).await.is_ok();
    let status = child.wait().expect("python3 ends");
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut stderr);
    }
    assert!(
        finished && status.success() && seen.last().map(String::as_str) == Some("ok"),
        "{} failed ({status}):\n{}\n{stderr}",
        script.display(),
        seen.join("\n")
    );
    seen
}

/// A real Kafka client at its default settings (confluent-kafka, that is
/// librdkafka: acks=all, retries) writes a topic with replication factor 3
/// on a cluster with `min.insync.replicas=2`, while the test SIGKILLs the
/// partition's leader and later starts it again. Every acknowledged record
/// is then read back from the new leader at the offset it was acknowledged
/// at (`tests/clients/replicated_failover.py` checks it), and `kcat -L`
/// shows three replicas and, once the restarted node caught up, three
/// in-sync replicas.
#[tokio::test]
async fn confluent_kafka_keeps_every_acknowledged_record_through_a_leader_sigkill() {
    let dir = std::env::temp_dir().join(format!("dlog-real-cluster-failover-{}", std::process::id()));
    let mut cluster = RealCluster::start_with(&dir, &["min.insync.replicas=2"]).await;
    let bootstrap: Vec<String> = (0..NODES).map(|node| cluster.bootstrap(node)).collect();
    // Wait until the quorum has a leader and takes topics.
    create_topic(&bootstrap[0], "warm-up").await;
    let seen = run_control_script(&mut cluster, &dir, "replicated_failover.py", &bootstrap).await;
    println!("{}", seen.join("\n"));

    // kcat, at its defaults, sees three replicas and, once the restarted
    // node has caught up and the leader has added it back, three in sync.
    let mut last = String::new();
    for _ in 0..100 {
        let output = Command::new("kcat")
            .args(["-L", "-b", &bootstrap.join(","), "-t", "replicated-failover"])
            .output()
            .expect("kcat runs");
        last = String::from_utf8_lossy(&output.stdout).into_owned();
        let line = last.lines().find(|l| l.contains("partition 0")).unwrap_or_default().to_string();
        let count = |key: &str| {
            line.split(key).nth(1).map_or(0, |rest| rest.split(|c: char| c == ' ' || c == ',').filter(|t| t.parse::<u32>().is_ok()).take(3).count())
        };
        if count("replicas: ") == 3 && count("isrs: ") == 3 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("kcat -L never showed 3 replicas and 3 in-sync replicas:\n{last}");
}

/// In the three-process cluster, SIGKILL a consumer group's coordinator
/// (`tests/clients/group_coordinator_failover.py`, confluent-kafka at its
/// defaults): the group goes on with a new coordinator, resumes exactly at
/// the offsets committed before the kill, and commits again.
#[tokio::test]
async fn confluent_kafka_group_survives_a_coordinator_sigkill() {
    let dir = std::env::temp_dir().join(format!("dlog-real-cluster-groups-{}", std::process::id()));
    // A dead follower leaves the ISR after 5 s, so acks=all commits to a
    // partition it followed go on with two replicas.
    let mut cluster = RealCluster::start_with(&dir, &["min.insync.replicas=2", "replica.lag.time.max.ms=5000"]).await;
    let bootstrap: Vec<String> = (0..NODES).map(|node| cluster.bootstrap(node)).collect();
    create_topic(&bootstrap[0], "warm-up").await;
    let seen = run_control_script(&mut cluster, &dir, "group_coordinator_failover.py", &bootstrap).await;
    println!("{}", seen.join("\n"));
    assert!(seen.iter().any(|l| l.contains("resumed at offset 10 on all 3 partitions")), "{}", seen.join("\n"));
}

/// Idempotent producers of two real clients (confluent-kafka with
/// `enable.idempotence=true`, kafka-python with `enable_idempotence=True`)
/// keep producing to a partition with replication factor 3 while the test
/// SIGKILLs its leader and later starts it again: every acknowledged record
/// is read back exactly once, and no record is read twice
/// (`tests/clients/idempotent_failover.py` checks it). Their retries across
/// the failover reach the new leader, whose producer state was replicated
/// with the records.
#[tokio::test]
async fn idempotent_producers_write_exactly_once_through_a_leader_sigkill() {
    let dir = std::env::temp_dir().join(format!("dlog-real-cluster-idempotent-{}", std::process::id()));
    let mut cluster = RealCluster::start_with(&dir, &["min.insync.replicas=2"]).await;
    let bootstrap: Vec<String> = (0..NODES).map(|node| cluster.bootstrap(node)).collect();
    create_topic(&bootstrap[0], "warm-up").await;
    let seen = run_control_script(&mut cluster, &dir, "idempotent_failover.py", &bootstrap).await;
    println!("{}", seen.join("\n"));
}
