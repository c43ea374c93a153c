//! `single-node-crash`: does one broker keep every acknowledged write
//! through crashes?
//!
//! Three producer processes send unique integers (one record per send,
//! acks=all) to the three partitions of topic `t`; two consumer processes
//! are assigned all partitions and poll. Meanwhile the fault schedule
//! crashes and restarts the broker (losing unsynced disk data), pauses it,
//! cuts client links and makes its disk fail writes and fsyncs. Then all
//! faults are healed, producers stop, and consumers drain every partition
//! to its end. With `log.flush=every-batch` (the default) the checker must
//! find nothing; with `log.flush=never` acknowledged writes die in crashes
//! and the checker reports them (`lost-write`, `unseen`, ...).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use broker::client::{Consumer, ConsumerConfig, Producer, ProducerConfig, TopicPartition};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sim::cluster::SimCluster;
use sim::nemesis::{FaultPlan, NemesisConfig};

use crate::history::Recorder;
use crate::run::{ClientSettings, ScenarioRun, Setup};

/// The topic every process uses.
const TOPIC: &str = "t";
/// Its partition count.
const PARTITIONS: i32 = 3;
/// Producer processes (0..PRODUCERS); consumers follow.
const PRODUCERS: u64 = 3;
/// Consumer processes.
const CONSUMERS: u64 = 2;
/// Faults happen in [FAULT_START_MS, FAULT_PHASE_MS).
const FAULT_START_MS: u64 = 1_000;
/// When faults stop and everything is healed.
const FAULT_PHASE_MS: u64 = 15_000;
/// How long after healing the drain may take before the run fails.
const DRAIN_MS_MAX: u64 = 60_000;

/// The fault mix of this scenario.
pub fn nemesis_config() -> NemesisConfig {
    NemesisConfig {
        nodes: vec!["broker-1".into()],
        clients: (0..PRODUCERS + CONSUMERS).map(|i| format!("client-{i}")).collect(),
        start_ms: FAULT_START_MS,
        fault_phase_ms: FAULT_PHASE_MS,
        gap_ms: (200, 1_500),
        weights: [4, 2, 2, 1, 2, 1, 1, 0, 0],
    }
}


/// Runs the scenario in the current simulation; returns the final trace hash.
pub async fn run(setup: Setup, history: Recorder) -> Result<ScenarioRun, String> {
    let mut cluster = SimCluster::start(1, &setup.broker, setup.seed);
    let bootstrap = cluster.brokers[0].addr();
    let plan = setup.fault_plan(&nemesis_config());
    let workload = LogWorkload {
        bootstrap,
        replication_factor: 1,
        create_attempts: 50,
        create_backoff_ms: 100,
        fault_phase_ms: FAULT_PHASE_MS,
        drain_quiet_ms: 0,
    };
    run_log_workload(&mut cluster, &setup, &history, &plan, workload).await?;
    Ok(ScenarioRun {
        schedule: plan.to_string(),
        trace_hash: cluster.trace_hash(),
        notes: Vec::new(),
        violations: Vec::new(),
    })
}

/// The log workload's settings, per scenario.
pub(crate) struct LogWorkload {
    /// Where clients connect (`host:port`, comma-separated).
    pub bootstrap: String,
    /// Of topic `t`.
    pub replication_factor: i16,
    /// Tries at creating the topic before the run fails, and the pause between.
    pub create_attempts: u32,
    pub create_backoff_ms: u64,
    /// When faults stop.
    pub fault_phase_ms: u64,
    /// A drain lasts at least this long (see `consumer_process`).
    pub drain_quiet_ms: u64,
}

/// The log workload: creates topic `t`, starts the producers and consumers,
/// runs `plan`, heals, stops the producers, then waits for every consumer
/// to drain every partition (within `DRAIN_MS_MAX` of healing).
pub(crate) async fn run_log_workload(
    cluster: &mut SimCluster,
    setup: &Setup,
    history: &Recorder,
    plan: &FaultPlan,
    workload: LogWorkload,
) -> Result<(), String> {
    let LogWorkload { bootstrap, replication_factor, create_attempts, create_backoff_ms, fault_phase_ms, drain_quiet_ms } = workload;
    let producers_stop = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(AtomicBool::new(false));
    let mut producer_handles = Vec::new();
    let mut consumer_handles = Vec::new();

    // Setup, before any fault: create the topic.
    let setup_node = cluster.add_client((PRODUCERS + CONSUMERS) as usize);
    let create = setup_node.spawn({
        let bootstrap = bootstrap.clone();
        async move {
            let mut producer = Producer::new(ProducerConfig { bootstrap, ..Default::default() }, Box::new(|| 0));
            for _ in 0..create_attempts {
                if producer.cluster().create_topic_replicated(TOPIC, PARTITIONS, replication_factor).await.is_ok() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(create_backoff_ms)).await;
            }
            false
        }
    });
    if !create.await.unwrap_or(false) {
        return Err("setup: could not create topic t".into());
    }

    for process in 0..PRODUCERS {
        let node = cluster.add_client(process as usize);
        let (bootstrap, history, stop, clients) = (bootstrap.clone(), history.clone(), producers_stop.clone(), setup.client.clone());
        let seed = setup.seed;
        producer_handles.push(node.spawn(async move { producer_process(process, seed, bootstrap, clients, topic_partitions(), history, stop).await }));
    }
    for process in PRODUCERS..PRODUCERS + CONSUMERS {
        let node = cluster.add_client(process as usize);
        let (bootstrap, history, drain, clients) = (bootstrap.clone(), history.clone(), drain.clone(), setup.client.clone());
        consumer_handles.push(node.spawn(async move { consumer_process(process, bootstrap, clients, topic_partitions(), history, drain, drain_quiet_ms).await }));
    }

    crate::nemesis_runner::run_plan(cluster, plan, history).await;
    // The last fault may end before the fault phase does; wait it out.
    let healed_at = sim::clock::elapsed_ns() / 1_000_000;
    if healed_at < fault_phase_ms {
        tokio::time::sleep(Duration::from_millis(fault_phase_ms - healed_at)).await;
    }
    history.nemesis("heal", json!("all"));
    // Producers finish their last send; only then may consumers call the
    // log drained, or a late acknowledgement would look unseen.
    producers_stop.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(DRAIN_MS_MAX);
    for handle in producer_handles {
        match tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), handle).await {
            Ok(Ok(())) => {}
            Ok(Err(join_error)) => return Err(format!("producer task failed: {join_error}")),
            Err(_) => return Err(format!("producers did not stop within {DRAIN_MS_MAX} ms of healing")),
        }
    }
    drain.store(true, Ordering::SeqCst);
    for handle in consumer_handles {
        match tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(reason))) => return Err(reason),
            Ok(Err(join_error)) => return Err(format!("consumer task failed: {join_error}")),
            Err(_) => return Err(format!("drain did not finish within {DRAIN_MS_MAX} ms of healing")),
        }
    }
    Ok(())
}

/// The topic-partitions of the log workload's topic `t`.
pub(crate) fn topic_partitions() -> Vec<TopicPartition> {
    (0..PARTITIONS).map(|p| TopicPartition::new(TOPIC, p)).collect()
}

/// A partition's key in the history (`"t-0"`).
pub(crate) fn history_key(tp: &TopicPartition) -> String {
    format!("{}-{}", tp.topic, tp.partition)
}

/// A producer of unique integers (`process * 1_000_000` on), each sent
/// alone to a partition of `partitions` the seed picks, until `stop`.
pub(crate) async fn producer_process(
    process: u64,
    seed: u64,
    bootstrap: String,
    clients: ClientSettings,
    partitions: Vec<TopicPartition>,
    history: Recorder,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (process + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let config = ProducerConfig {
        bootstrap,
        client_id: format!("producer-{process}"),
        request_timeout_ms: clients.request_timeout_ms,
        retries: clients.retries,
        retry_backoff_ms: 50,
        retry_backoff_ms_max: 500,
        retry_ambiguous: clients.retry_ambiguous,
        acks: clients.acks,
        enable_idempotence: clients.enable_idempotence,
        ..ProducerConfig::default()
    };
    let clock = sim::clock::SimClock::new();
    let mut producer = Producer::new(config, Box::new(move || broker::clock::Clock::now_ms(&clock)));
    let mut next_value = process * 1_000_000;
    while !stop.load(Ordering::SeqCst) {
        let tp = &partitions[rng.gen_range(0..partitions.len())];
        let value = next_value;
        next_value += 1;
        let key = history_key(tp);
        history.invoke(process, "send", json!([["send", key, value]]));
        match producer.send(tp, None, Some(Bytes::from(value.to_string()))).await {
            Ok(outcome) => history.complete(process, "ok", "send", json!([["send", key, [outcome.base_offset, value]]])),
            Err(error) if error.definite => history.complete(process, "fail", "send", json!([["send", key, value]])),
            Err(_) => history.complete(process, "info", "send", json!([["send", key, value]])),
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(5..50))).await;
    }
}

/// A consumer of `partitions` (at the consumer's default isolation level,
/// read_committed) that polls until `drain` is set and it then has caught
/// up with every partition for `quiet_ms`.
pub(crate) async fn consumer_process(
    process: u64,
    bootstrap: String,
    clients: ClientSettings,
    partitions: Vec<TopicPartition>,
    history: Recorder,
    drain: Arc<AtomicBool>,
    quiet_ms: u64,
) -> Result<(), String> {
    let config = ConsumerConfig {
        bootstrap,
        client_id: format!("consumer-{process}"),
        request_timeout_ms: clients.request_timeout_ms,
        fetch_wait_ms_max: 200,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(config);
    let keys: Vec<String> = partitions.iter().map(history_key).collect();
    history.invoke(process, "assign", json!(keys));
    consumer.assign(&partitions);
    history.complete(process, "ok", "assign", json!(keys));
    let mut clean_polls_after_stop = 0;
    // Fetch counts when draining began: a partition is drained only by a
    // fetch that succeeded after that (its high watermark is fresh, not one
    // remembered from a leader that has gone away since).
    let mut fetches_at_drain: Option<Vec<u64>> = None;
    // With replication, a new leader's high watermark may trail the
    // committed offset until its followers fetch again (or a dead one is
    // fenced): a drain must also have lasted `quiet_ms`, and the consumer
    // must have stayed caught up for `quiet_ms` (a leader that changes late
    // in the drain shows a high watermark that trails for a while, and
    // being caught up with it proves nothing).
    let mut drain_started_ms = 0;
    let mut caught_up_since_ms: Option<u64> = None;
    loop {
        // Read the flag before polling: only a poll that started after the
        // producers finished can prove the log drained.
        let draining = drain.load(Ordering::SeqCst);
        if draining && fetches_at_drain.is_none() {
            fetches_at_drain = Some(partitions.iter().map(|tp| consumer.fetch_count(tp)).collect());
            drain_started_ms = sim::clock::elapsed_ns() / 1_000_000;
        }
        history.invoke(process, "poll", json!([["poll"]]));
        match consumer.poll().await {
            Ok(records) => {
                let mut read: BTreeMap<String, Vec<Value>> = BTreeMap::new();
                for record in records {
                    let value = record
                        .value
                        .as_deref()
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.parse::<i64>().ok());
                    let Some(value) = value else {
                        return Err(format!("consumer {process} read an undecodable value at {}@{}", record.tp, record.offset));
                    };
                    read.entry(history_key(&record.tp)).or_default().push(json!([record.offset, value]));
                }
                history.complete(process, "ok", "poll", json!([["poll", read]]));
                if draining {
                    clean_polls_after_stop += 1;
                    let at_drain = fetches_at_drain.as_deref().unwrap_or_default();
                    let caught_up = partitions.iter().zip(at_drain).all(|(tp, &before)| {
                        let fresh = consumer.fetch_count(tp) > before;
                        match (consumer.position(tp), consumer.high_watermark(tp)) {
                            (Some(position), Some(high_watermark)) => fresh && position >= high_watermark,
                            _ => false,
                        }
                    });
                    let now_ms = sim::clock::elapsed_ns() / 1_000_000;
                    if !caught_up && clean_polls_after_stop % 100 == 0 {
                        let behind: Vec<String> = partitions
                            .iter()
                            .filter(|tp| !matches!((consumer.position(tp), consumer.high_watermark(tp)), (Some(p), Some(hw)) if p >= hw))
                            .map(|tp| format!("{tp} at {:?} of {:?}", consumer.position(tp), consumer.high_watermark(tp)))
                            .collect();
                        tracing::info!(process, ?behind, "draining: not caught up yet");
                    }
                    caught_up_since_ms = if caught_up { Some(caught_up_since_ms.unwrap_or(now_ms)) } else { None };
                    let quiet = now_ms >= drain_started_ms + quiet_ms && caught_up_since_ms.is_some_and(|since| now_ms >= since + quiet_ms);
                    if caught_up && quiet && clean_polls_after_stop >= 2 {
                        return Ok(());
                    }
                }
            }
            Err(_) => history.complete(process, "fail", "poll", json!([["poll"]])),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
