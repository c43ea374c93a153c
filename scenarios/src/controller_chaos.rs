//! `controller-chaos`: is cluster metadata linearizable while the Raft
//! controllers fail, and does the cluster recover?
//!
//! Three controllers form the quorum; two brokers in cluster mode answer
//! clients from it. Four client processes, each talking to one broker,
//! create topics (a `cas` from "no topic" to a partition count: exactly
//! one creator of a name may win) and read metadata (a `read` of the
//! partition count, or null for no topic), over eight topic names. The
//! schedule crashes, pauses and isolates controllers, fails their disks and
//! skews their clocks. The history is a kv history, topic name → partition
//! count, judged by the checker's linearizability engine, plus the leader
//! epoch of each topic's partition 0 as seen by every metadata read, which
//! must never go backwards in real time (the checker's `epoch` reads). The
//! invariant of state machine safety is checked too: no two controllers
//! (and no controller twice) apply different entries at one index. After healing,
//! creating a fresh topic must succeed within `RECOVERY_MS_MAX`: liveness.

use std::time::Duration;

use broker::client::Connection;
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic, metadata_request::MetadataRequestTopic, CreateTopicsRequest, MetadataRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sim::cluster::SimCluster;
use sim::nemesis::NemesisConfig;

use crate::history::{Actor, Recorder};
use crate::run::{ScenarioRun, Setup, Violation};

/// Client processes.
const PROCESSES: u64 = 4;
/// Process ids of the companions that record leader-epoch reads.
const EPOCH_PROCESS_OFFSET: u64 = 100;
/// Topic names the clients contend on.
const KEYS: u64 = 8;
/// Brokers in the cluster.
const BROKERS: usize = 2;
/// Faults happen in [FAULT_START_MS, FAULT_PHASE_MS).
const FAULT_START_MS: u64 = 3_000;
/// When faults stop.
const FAULT_PHASE_MS: u64 = 25_000;
/// When the leader killer stops: it needs many elections, each quick.
const LEADER_KILL_PHASE_MS: u64 = 63_000;
/// After healing, a metadata write must succeed within this long.
const RECOVERY_MS_MAX: u64 = 20_000;
/// Per-request timeout of the clients.
const REQUEST_TIMEOUT_MS: u64 = 2_000;

/// Which nemesis a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    /// A [`sim::nemesis::FaultPlan`] drawn from the seed before the run (`controller-chaos`).
    Plan,
    /// The leader killer of [`crate::leader_kill`] (`controller-leader-kill`).
    LeaderKill,
}

/// The fault mix for `controllers` controllers and the brokers: everything
/// that can happen to a controller; a broker that is down longer than
/// `broker.session.timeout.ms` is fenced and its partitions' leader epochs
/// move on.
pub fn nemesis_config(controllers: usize) -> NemesisConfig {
    NemesisConfig {
        nodes: (1..=controllers)
            .map(|n| format!("controller-{n}"))
            .chain((1..=BROKERS).map(|n| format!("broker-{n}")))
            .collect(),
        clients: Vec::new(),
        start_ms: FAULT_START_MS,
        fault_phase_ms: FAULT_PHASE_MS,
        gap_ms: (100, 1_000),
        // crash, pause, cut link, clock skew, disk errors, full disk, read corruption, isolate, power loss
        weights: [4, 2, 0, 1, 1, 1, 1, 4, 1],
    }
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// What one operation returned.
enum Outcome {
    /// It happened; the value to record.
    Ok(Value),
    /// A create found the topic already there: the cas comparison failed.
    Exists,
    /// Certainly no effect (no controller leader, or never sent). A `fail`
    /// of a cas means "the comparison failed" to the checker, so these are
    /// recorded as `info`: sound, if less sharp.
    NoEffect,
    /// Maybe happened.
    Unknown,
}

/// A metadata client bound to one broker, reconnecting as needed.
struct MetadataClient {
    broker: String,
    client_id: String,
    connection: Option<Connection>,
}

impl MetadataClient {
    async fn connection(&mut self) -> Option<&mut Connection> {
        if self.connection.is_none() {
            self.connection = Connection::connect(&self.broker, &self.client_id, REQUEST_TIMEOUT_MS).await.ok();
        }
        self.connection.as_mut()
    }

    /// cas(null → partitions): create the topic.
    async fn create(&mut self, name: &str, partitions: i32) -> Outcome {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)])
            .with_timeout_ms(REQUEST_TIMEOUT_MS as i32);
        let Some(connection) = self.connection().await else {
            return Outcome::NoEffect;
        };
        match connection.request(&request, 4, REQUEST_TIMEOUT_MS * 4).await {
            Ok(response) => match response.topics.first().map(|t| t.error_code) {
                Some(0) => Outcome::Ok(json!([null, partitions])),
                Some(code) if code == ResponseError::TopicAlreadyExists.code() => Outcome::Exists,
                Some(code) if code == ResponseError::NotController.code() => Outcome::NoEffect,
                _ => Outcome::Unknown,
            },
            Err(_) => {
                self.connection = None;
                Outcome::Unknown
            }
        }
    }

    /// read: the topic's partition count, or null when it does not exist;
    /// with the leader epoch of its partition 0, when it exists.
    async fn read(&mut self, name: &str) -> (Outcome, Option<i32>) {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic(name)))]))
            .with_allow_auto_topic_creation(false);
        let Some(connection) = self.connection().await else {
            return (Outcome::NoEffect, None);
        };
        match connection.request(&request, 7, REQUEST_TIMEOUT_MS * 4).await {
            Ok(response) => match response.topics.first() {
                Some(t) if t.error_code == 0 => {
                    let epoch = t.partitions.iter().find(|p| p.partition_index == 0).map(|p| p.leader_epoch);
                    (Outcome::Ok(json!(t.partitions.len())), epoch)
                }
                Some(t) if t.error_code == ResponseError::UnknownTopicOrPartition.code() => (Outcome::Ok(Value::Null), None),
                _ => (Outcome::NoEffect, None),
            },
            Err(_) => {
                self.connection = None;
                (Outcome::NoEffect, None)
            }
        }
    }
}

fn record(history: &Recorder, process: u64, kind: &str, f: &str, key: &str, value: Value) {
    history.record_keyed(Actor::Process(process), kind, f, Some(key), value);
}

async fn client_process(process: u64, seed: u64, broker: String, history: Recorder, until_ms: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (process + 1).wrapping_mul(0xc2b2_ae3d_27d4_eb4f));
    let mut client = MetadataClient {
        broker,
        client_id: format!("metadata-client-{process}"),
        connection: None,
    };
    while sim::clock::elapsed_ns() / 1_000_000 < until_ms {
        let key = format!("topic-{}", rng.gen_range(0..KEYS));
        if rng.gen_bool(0.3) {
            let partitions = rng.gen_range(1..=4);
            record(&history, process, "invoke", "cas", &key, json!([null, partitions]));
            match client.create(&key, partitions).await {
                Outcome::Ok(value) => record(&history, process, "ok", "cas", &key, value),
                Outcome::Exists => record(&history, process, "fail", "cas", &key, json!([null, partitions])),
                Outcome::NoEffect | Outcome::Unknown => record(&history, process, "info", "cas", &key, json!([null, partitions])),
            }
        } else {
            // One metadata request is two reads: the partition count (a
            // register) and partition 0's leader epoch (an `epoch` read,
            // recorded by a companion process whose operation spans the
            // same request).
            let epoch_key = format!("{key}/0");
            let epoch_process = process + EPOCH_PROCESS_OFFSET;
            record(&history, process, "invoke", "read", &key, Value::Null);
            record(&history, epoch_process, "invoke", "epoch", &epoch_key, Value::Null);
            let (outcome, epoch) = client.read(&key).await;
            match outcome {
                Outcome::Ok(value) => record(&history, process, "ok", "read", &key, value),
                // A read that returned nothing constrains nothing.
                _ => record(&history, process, "fail", "read", &key, Value::Null),
            }
            match epoch {
                Some(epoch) => record(&history, epoch_process, "ok", "epoch", &epoch_key, json!(epoch)),
                None => record(&history, epoch_process, "fail", "epoch", &epoch_key, Value::Null),
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(10..200))).await;
    }
}

/// Why state machine safety broke, in plain words, for the run's report.
fn explain_state_machine_safety(setup: &Setup) -> String {
    if setup.quorum.raft.commit_old_term_entries_by_count {
        "why: a controller applied an entry that a later leader then overwrote. With \
         raft.commit_old_term_entries_by_count=true, a leader that copied an entry from an earlier term to a majority \
         counted it as committed and applied it. But a majority copy of an old entry does not stop a candidate whose \
         log ends in a newer term from winning an election (the voters' logs are not more up to date than its own), \
         and that leader overwrites the entry: Figure 8 of the Raft paper. Raft commits by counting only entries of \
         the leader's own term (section 5.4.2); older ones commit with them."
            .into()
    } else {
        "why: a controller applied an entry that a later leader then overwrote. No teaching knob is on, so this is a \
         bug in the Raft core or its driver: replay the seed with --trace."
            .into()
    }
}

/// The schedule a run prints first.
pub fn schedule(setup: &Setup, faults: Faults) -> String {
    match faults {
        Faults::Plan => setup.fault_plan(&nemesis_config(setup.quorum.controllers)).to_string(),
        Faults::LeaderKill => crate::leader_kill::LeaderKill::new(FAULT_START_MS, LEADER_KILL_PHASE_MS).describe(),
    }
}

/// Runs the scenario in the current simulation.
pub async fn run(setup: Setup, history: Recorder, faults: Faults) -> Result<ScenarioRun, String> {
    let mut cluster = SimCluster::start_with_quorum(BROKERS, &setup.broker, &setup.quorum, setup.seed);
    let fault_phase_ms = match faults {
        Faults::Plan => FAULT_PHASE_MS,
        Faults::LeaderKill => LEADER_KILL_PHASE_MS,
    };
    let brokers: Vec<String> = cluster.brokers.iter().map(|b| b.addr()).collect();
    let mut handles = Vec::new();
    for process in 0..PROCESSES {
        let node = cluster.add_client(process as usize);
        let broker = brokers[process as usize % brokers.len()].clone();
        let history = history.clone();
        let seed = setup.seed;
        handles.push(node.spawn(async move { client_process(process, seed, broker, history, fault_phase_ms).await }));
    }
    let mut fault_notes = Vec::new();
    match faults {
        Faults::Plan => {
            let plan = setup.fault_plan(&nemesis_config(setup.quorum.controllers));
            crate::nemesis_runner::run_plan(&cluster, &plan, &history).await;
        }
        Faults::LeaderKill => {
            let kills = crate::leader_kill::LeaderKill::new(FAULT_START_MS, LEADER_KILL_PHASE_MS)
                .run(&cluster, setup.seed, &history)
                .await;
            fault_notes.push(format!("leaders killed: {kills}"));
        }
    }
    let now_ms = sim::clock::elapsed_ns() / 1_000_000;
    if now_ms < fault_phase_ms {
        tokio::time::sleep(Duration::from_millis(fault_phase_ms - now_ms)).await;
    }
    history.nemesis("heal", json!("all"));
    for handle in handles {
        handle.await.map_err(|e| format!("client task failed: {e}"))?;
    }

    // Liveness: with every fault healed, a metadata write succeeds within a bound.
    let healed_ms = sim::clock::elapsed_ns() / 1_000_000;
    let checker_node = cluster.add_client(PROCESSES as usize);
    let broker = brokers[0].clone();
    let recorder = history.clone();
    let recovery = checker_node.spawn(async move {
        let mut client = MetadataClient {
            broker,
            client_id: "liveness-probe".into(),
            connection: None,
        };
        let deadline_ms = healed_ms + RECOVERY_MS_MAX;
        // A fresh name per attempt, so an unknown outcome never clouds the next.
        for attempt in 0.. {
            if sim::clock::elapsed_ns() / 1_000_000 >= deadline_ms {
                break;
            }
            let key = format!("liveness-probe-{attempt}");
            record(&recorder, PROCESSES, "invoke", "cas", &key, json!([null, 1]));
            match client.create(&key, 1).await {
                Outcome::Ok(value) => {
                    record(&recorder, PROCESSES, "ok", "cas", &key, value);
                    return Ok(sim::clock::elapsed_ns() / 1_000_000 - healed_ms);
                }
                Outcome::Exists => {
                    record(&recorder, PROCESSES, "fail", "cas", &key, json!([null, 1]));
                    return Err(format!("fresh topic {key} already existed"));
                }
                Outcome::NoEffect | Outcome::Unknown => record(&recorder, PROCESSES, "info", "cas", &key, json!([null, 1])),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("no metadata write succeeded within {RECOVERY_MS_MAX} ms of healing"))
    });
    let recovered_after_ms = recovery.await.map_err(|e| format!("liveness probe failed: {e}"))??;
    let mut notes = vec![
        format!("elections: {}", cluster.elections()),
        format!("metadata writes recovered {recovered_after_ms} ms after healing"),
    ];
    notes.extend(fault_notes);
    let violations: Vec<Violation> = cluster
        .state_machine_safety_violations()
        .into_iter()
        .map(|text| Violation { name: "state-machine-safety", text })
        .collect();
    if !violations.is_empty() {
        notes.push(explain_state_machine_safety(&setup));
    }
    Ok(ScenarioRun {
        schedule: schedule(&setup, faults),
        trace_hash: cluster.trace_hash(),
        notes,
        violations,
    })
}
