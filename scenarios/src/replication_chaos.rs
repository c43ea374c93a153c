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

use sim::cluster::SimCluster;
use sim::nemesis::NemesisConfig;

use crate::history::Recorder;
use crate::run::{ScenarioRun, Setup};
use crate::single_node_crash::{run_log_workload, LogWorkload};

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
    setup.fault_plan(&nemesis_config(setup)).to_string()
}

/// Runs the scenario in the current simulation.
pub async fn run(setup: Setup, history: Recorder) -> Result<ScenarioRun, String> {
    let mut cluster = SimCluster::start_with_quorum(BROKERS, &setup.broker, &setup.quorum, setup.seed);
    let bootstrap = cluster.brokers.iter().map(|b| b.addr()).collect::<Vec<_>>().join(",");
    let plan = setup.fault_plan(&nemesis_config(&setup));
    let workload = LogWorkload {
        bootstrap,
        // Every broker holds a replica of every partition.
        replication_factor: BROKERS as i16,
        create_attempts: 100,
        create_backoff_ms: 200,
        fault_phase_ms: FAULT_PHASE_MS,
        drain_quiet_ms: DRAIN_QUIET_MS,
    };
    run_log_workload(&mut cluster, &setup, &history, &plan, workload).await?;
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
