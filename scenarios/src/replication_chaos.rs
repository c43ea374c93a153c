//! `replication-chaos`: does a replicated topic keep every acknowledged
//! acks=all write while a minority of brokers fails?
//!
//! Three controllers and three brokers; topic `t` has 3 partitions with
//! replication factor 3, and the brokers run with `min.insync.replicas=2`
//! and Kafka's default flush policy (`log.flush=never`: no fsync per batch,
//! durability comes from replication), so a crash loses each broker's
//! unsynced writes. The workload is single-node-crash's: three producers
//! send unique integers with acks=all, two consumers poll every partition.
//! The schedule crashes, pauses, isolates and cuts the links of brokers and
//! controllers, fails their disks and skews their clocks, one fault at a
//! time, so at most one node is down at once, with time between faults
//! to restore the ISR. After healing, producers
//! stop and consumers drain every partition to its high watermark: every
//! acknowledged record must be read (`lost-write`, `unseen`), none twice at
//! different offsets, offsets never reused.
//!
//! Teaching knobs: `client.acks=1` (acknowledged after the leader's append
//! alone; a failover before the followers fetched loses it) and
//! `min.insync.replicas=1` (the ISR shrinks to the leader alone, which then
//! crashes: Jepsen's Kafka 0.8 finding), `unclean.leader.election.enable=true`,
//! `replication.truncate_to_high_watermark=true` (pre-KIP-101 truncation).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use broker::client::{Producer, ProducerConfig};
use serde_json::json;
use sim::cluster::SimCluster;
use sim::nemesis::{FaultPlan, NemesisConfig};

use crate::history::Recorder;
use crate::run::{ScenarioRun, Setup};
use crate::single_node_crash::{consumer_process, producer_process, CONSUMERS, PARTITIONS, PRODUCERS, TOPIC};

/// Brokers in the cluster (and the topic's replication factor).
const BROKERS: usize = 3;
/// Faults happen in [FAULT_START_MS, FAULT_PHASE_MS).
const FAULT_START_MS: u64 = 3_000;
/// When faults stop and everything is healed.
const FAULT_PHASE_MS: u64 = 30_000;
/// A drain lasts at least this long: long enough for a dead ISR member to
/// be fenced (2 s) or a lagging one to leave the ISR (5 s), so that every
/// leader's high watermark has reached what was committed.
const DRAIN_QUIET_MS: u64 = 8_000;
/// How long after healing the drain may take before the run fails.
const DRAIN_MS_MAX: u64 = 60_000;

/// The fault mix: everything that can happen to one broker or controller
/// (`nemesis.*` settings may shorten the gaps or add power losses).
pub fn nemesis_config(setup: &Setup) -> NemesisConfig {
    NemesisConfig {
        nodes: (1..=BROKERS)
            .map(|n| format!("broker-{n}"))
            .chain((1..=setup.quorum.controllers).map(|n| format!("controller-{n}")))
            .collect(),
        clients: Vec::new(),
        start_ms: FAULT_START_MS,
        fault_phase_ms: FAULT_PHASE_MS,
        // Between two faults the cluster gets the time to restore a full
        // ISR (a restarted broker registers once its old session expired,
        // 2 s, then catches up): with RF 3 and min.insync.replicas=2 it
        // survives one replica failure at a time, not a second one that
        // strikes before the first was repaired.
        gap_ms: setup.nemesis.gap_ms.unwrap_or((3_000, 5_000)),
        // crash, pause, cut link, clock skew, disk errors, full disk, read corruption, isolate, power loss
        weights: [4, 2, 2, 1, 1, 1, 1, 3, u32::from(setup.nemesis.power_loss)],
    }
}

/// The schedule a run prints first.
pub fn schedule(setup: &Setup) -> String {
    FaultPlan::generate(setup.seed, &nemesis_config(setup)).to_string()
}

/// Runs the scenario in the current simulation.
pub async fn run(setup: Setup, history: Recorder) -> Result<ScenarioRun, String> {
    let mut cluster = SimCluster::start_with_quorum(BROKERS, &setup.broker, &setup.quorum, setup.seed);
    let bootstrap = cluster.brokers.iter().map(|b| b.addr()).collect::<Vec<_>>().join(",");
    let plan = FaultPlan::generate(setup.seed, &nemesis_config(&setup));
    let producers_stop = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(AtomicBool::new(false));

    // Setup, before any fault: create the topic with every broker a replica.
    let setup_node = cluster.add_client((PRODUCERS + CONSUMERS) as usize);
    let create = setup_node.spawn({
        let bootstrap = bootstrap.clone();
        async move {
            let mut producer = Producer::new(ProducerConfig { bootstrap, ..Default::default() }, Box::new(|| 0));
            for _ in 0..100 {
                if producer.cluster().create_topic_replicated(TOPIC, PARTITIONS, BROKERS as i16).await.is_ok() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            false
        }
    });
    if !create.await.unwrap_or(false) {
        return Err("setup: could not create topic t".into());
    }

    let mut producer_handles = Vec::new();
    let mut consumer_handles = Vec::new();
    for process in 0..PRODUCERS {
        let node = cluster.add_client(process as usize);
        let (bootstrap, history, stop, clients) = (bootstrap.clone(), history.clone(), producers_stop.clone(), setup.client.clone());
        let seed = setup.seed;
        producer_handles.push(node.spawn(async move { producer_process(process, seed, bootstrap, clients, history, stop).await }));
    }
    for process in PRODUCERS..PRODUCERS + CONSUMERS {
        let node = cluster.add_client(process as usize);
        let (bootstrap, history, drain, clients) = (bootstrap.clone(), history.clone(), drain.clone(), setup.client.clone());
        consumer_handles.push(node.spawn(async move { consumer_process(process, bootstrap, clients, history, drain, DRAIN_QUIET_MS).await }));
    }

    crate::nemesis_runner::run_plan(&cluster, &plan, &history).await;
    let healed_at = sim::clock::elapsed_ns() / 1_000_000;
    if healed_at < FAULT_PHASE_MS {
        tokio::time::sleep(Duration::from_millis(FAULT_PHASE_MS - healed_at)).await;
    }
    history.nemesis("heal", json!("all"));
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
    let mut notes = vec![format!("elections: {}", cluster.elections())];
    notes.extend(explain_knobs(&setup));
    Ok(ScenarioRun {
        schedule: plan.to_string(),
        trace_hash: cluster.trace_hash(),
        notes,
        violations: Vec::new(),
    })
}

/// For each teaching knob the run has on, what it breaks, in plain words:
/// the reading of an invalid verdict.
fn explain_knobs(setup: &Setup) -> Vec<String> {
    let mut why = Vec::new();
    if setup.client.acks == 1 {
        why.push(
            "why (client.acks=1): a producer is acknowledged once the leader appended the record, before any \
             follower copied it. When that leader crashes (losing its unsynced tail) or is cut off, a follower that \
             never had the record becomes leader, and the next records take its offsets: acknowledged writes are \
             lost (`lost-write`) and offsets hold two values (`inconsistent-offsets`)."
                .to_string(),
        );
    }
    if setup.broker.min_insync_replicas < 2 {
        why.push(
            "why (min.insync.replicas=1): when both followers drop out of the ISR, the leader alone acknowledges \
             acks=all writes. If it then crashes, losing its unsynced tail, it is still the only ISR member, so it \
             leads again with a log that lacks acknowledged records, and new records reuse their offsets (Jepsen's \
             Kafka 0.8 finding). With min.insync.replicas=2 such writes are refused with NOT_ENOUGH_REPLICAS."
                .to_string(),
        );
    }
    if setup.quorum.metadata.unclean_leader_election_enable {
        why.push(
            "why (unclean.leader.election.enable=true): with no live ISR member and no eligible leader replica, \
             the controller makes an out-of-sync replica leader rather than wait; whatever it lacked of the \
             committed log is gone, and its next records take those offsets."
                .to_string(),
        );
    }
    if setup.broker.replication_truncate_to_high_watermark {
        why.push(
            "why (replication.truncate_to_high_watermark=true): a new follower cuts its log to its own high \
             watermark, which trails the leader's, and fetches without naming its last epoch (before KIP-101). If \
             the leader fails right then, the follower that truncated may be elected and a committed record it cut \
             is gone; or a replica keeps records of an old epoch that the new leader overwrote: the logs diverge."
                .to_string(),
        );
    }
    if setup.nemesis.power_loss {
        why.push(
            "why (nemesis.power_loss=true): every node loses power at once. With no fsync per batch every replica \
             loses the same unsynced records, acknowledged or not: replication protects against independent \
             failures only, which is what Kafka's default flush policy assumes."
                .to_string(),
        );
    }
    why
}
