//! Coverage marks: each scenario proves, over a small seed range, that it
//! reaches the rare paths it claims to exercise (`mark!` sites in broker
//! code, catalogued in `broker::testbed::MARKS`).
//!
//! Method: sweep the scenario's seeds, gather the marks every run reached,
//! and fail naming each required mark no seed reached. The lists are what
//! the scenarios reach today over the range; a change that makes a
//! scenario stop reaching one (a timeout raised, a fault that no longer
//! bites) fails here, instead of leaving the scenario green and blind. Every
//! mark is either required by some scenario here or listed in `UNREACHED`
//! with the reason, so a new mark needs a decision.
#![cfg(madsim)]

use std::process::Command;
use std::sync::Mutex;

use broker::testbed::{RunCoverage, MARKS};
use dlog_tests::workspace_binary;
use scenarios::coverage::CoverageTally;

/// Seeds every scenario here must cover its marks in: small, so the
/// simulation test job stays quick.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=40;

const SINGLE_NODE_CRASH: &[&str] = &[
    "storage.recovery.unclean_tail_scan",
    "storage.append.rollback",
    "storage.read.reread_after_bad_crc",
    "storage.read.corrupt",
];

const REPLICATION_CHAOS: &[&str] = &[
    "raft.leader.elected",
    "raft.log.truncate_conflict",
    "raft.check_quorum.step_down",
    "controller.broker.fenced",
    "controller.partition.leader_moved",
    "replication.isr.expand",
    "replication.leader.diverging_epoch",
    "replication.follower.truncate_by_epoch",
    "replication.fenced_leader_epoch",
    "replication.unknown_leader_epoch",
    "replication.produce.timed_out",
    "storage.recovery.unclean_tail_scan",
    "storage.append.rollback",
    "storage.read.reread_after_bad_crc",
    "storage.read.corrupt",
    "storage.truncate",
];

/// Rarer paths replication-chaos reaches only over a longer range.
const REPLICATION_CHAOS_RARE_SEEDS: std::ops::RangeInclusive<u64> = 1..=300;
const REPLICATION_CHAOS_RARE: &[&str] = &[
    // A follower cut off from its leader but not from the quorum for
    // replica.lag.time.max.ms (5 s): usually the broker is fenced after 2 s
    // and the controller shrinks the ISR first.
    "replication.isr.shrink",
    // The last ISR member died and an eligible leader replica (KIP-966) led.
    "controller.elect.eligible_replica",
    // A broker's request raced its own re-registration (stale view).
    "controller.stale_broker_epoch",
];

const CONTROLLER_CHAOS: &[&str] = &[
    "raft.leader.elected",
    "raft.log.truncate_conflict",
    "raft.check_quorum.step_down",
    "controller.broker.fenced",
    "controller.partition.leader_moved",
    "storage.recovery.unclean_tail_scan",
];

const GROUP_CHAOS: &[&str] = &[
    "group.coordinator.unloaded",
    "group.coordinator.loaded_groups",
    "group.commit.fenced",
    "group.member.session_expired",
    "replication.isr.expand",
    "controller.broker.fenced",
];

/// Rarer paths group-chaos reaches only over a longer range.
const GROUP_CHAOS_RARE_SEEDS: std::ops::RangeInclusive<u64> = 1..=100;
const GROUP_CHAOS_RARE: &[&str] = &[
    // A generation's record not replicated before its coordinator failed
    // over (9 of seeds 1..200, the first 43).
    "group.generation.voided",
];

const TXN_CHAOS: &[&str] = &[
    "group.txn_offsets.committed",
    "group.txn_offsets.aborted",
    "txn.coordinator.append_failed",
    "txn.coordinator.fence_ongoing",
    "txn.coordinator.loaded_ids",
    "txn.coordinator.markers_retried",
    "txn.coordinator.resumed_prepared",
    "txn.coordinator.timed_out",
    "txn.coordinator.unloaded",
    "txn.partition.verification_refused",
    "producer_state.duplicate_answered",
    "storage.compaction.segment",
];

const CONTROLLER_LEADER_KILL: &[&str] = &["raft.leader.elected", "raft.log.truncate_conflict", "raft.append.reject_conflict_term"];

/// Marks no scenario reaches at its default settings today, and why.
const UNREACHED: &[(&str, &str)] = &[
    ("raft.snapshot.install", "no scenario runs long enough for a follower to fall behind a compacted log"),
    ("controller.elect.unclean", "unclean.leader.election.enable is off by default"),
    ("controller.alter_partition.fenced_leader_epoch", "not reached in seeds 1..300 of single-node-crash, controller-chaos or replication-chaos"),
    ("controller.alter_partition.stale_partition_epoch", "not reached in seeds 1..300 of single-node-crash, controller-chaos or replication-chaos"),
    ("replication.leader.stale_metadata", "not reached in seeds 1..300 of single-node-crash, controller-chaos or replication-chaos"),
    (
        "storage.recovery.torn_tail",
        "the simulated disk loses whole unsynced writes on a crash, never part of one, so no segment ends torn",
    ),
    ("storage.recovery.rebuild_index", "crashes leave no clean-shutdown marker, so the last segment is scanned, not indexed"),
    ("storage.reload_after_failure", "not reached in seeds 1..300 of single-node-crash, controller-chaos or replication-chaos"),
    ("txn.coordinator.expired_id", "transactional.id.expiration.ms is 7 days; no run lasts that long"),
    ("storage.retention.delete_segment", "no scenario sets a retention limit"),
];

/// Sweeps `seeds` of `scenario` (two threads) and gathers their marks;
/// a run that failed outright fails the test.
fn coverage(scenario: &str, seeds: std::ops::RangeInclusive<u64>, config: &[&str]) -> CoverageTally {
    let tally = Mutex::new(CoverageTally::default());
    let failures = dlog_tests::sweep_scenario(scenario, seeds, config, |seed, outcome| {
        tally.lock().unwrap().add(seed, &outcome.coverage);
        false
    });
    assert!(failures.is_empty(), "{scenario}: runs failed:\n{}", failures.join("\n"));
    tally.into_inner().unwrap()
}

fn describe(name: &str) -> &'static str {
    MARKS.iter().find(|(known, _)| *known == name).map_or("?", |(_, what)| what)
}

/// Fails naming every mark in `required` that no seed of `seeds` reached.
fn assert_reaches(scenario: &str, seeds: std::ops::RangeInclusive<u64>, required: &[&str]) {
    let tally = coverage(scenario, seeds.clone(), &[]);
    let missed = tally.missing(required);
    assert!(
        missed.is_empty(),
        "{scenario} over seeds {seeds:?} never reached {} required mark(s):\n{}\n\n{}",
        missed.len(),
        missed.iter().map(|name| format!("  {name}: {}", describe(name))).collect::<Vec<_>>().join("\n"),
        tally.render()
    );
}

#[test]
fn single_node_crash_reaches_its_marks() {
    assert_reaches("single-node-crash", SEEDS, SINGLE_NODE_CRASH);
}

#[test]
fn replication_chaos_reaches_its_marks() {
    assert_reaches("replication-chaos", SEEDS, REPLICATION_CHAOS);
}

#[test]
fn replication_chaos_reaches_its_rarest_marks_over_300_seeds() {
    assert_reaches("replication-chaos", REPLICATION_CHAOS_RARE_SEEDS, REPLICATION_CHAOS_RARE);
}

#[test]
fn controller_chaos_reaches_its_marks() {
    assert_reaches("controller-chaos", SEEDS, CONTROLLER_CHAOS);
}

#[test]
fn group_chaos_reaches_its_marks() {
    assert_reaches("group-chaos", SEEDS, GROUP_CHAOS);
}

#[test]
fn group_chaos_reaches_its_rarest_marks_over_100_seeds() {
    assert_reaches("group-chaos", GROUP_CHAOS_RARE_SEEDS, GROUP_CHAOS_RARE);
}

#[test]
fn txn_chaos_reaches_its_marks() {
    assert_reaches("txn-chaos", SEEDS, TXN_CHAOS);
}

#[test]
fn controller_leader_kill_reaches_its_marks() {
    assert_reaches("controller-leader-kill", SEEDS, CONTROLLER_LEADER_KILL);
}

#[test]
fn every_mark_is_required_somewhere_or_explained() {
    let required: Vec<&str> =
        [SINGLE_NODE_CRASH, REPLICATION_CHAOS, REPLICATION_CHAOS_RARE, CONTROLLER_CHAOS, CONTROLLER_LEADER_KILL, GROUP_CHAOS, GROUP_CHAOS_RARE, TXN_CHAOS].concat();
    for (name, _) in MARKS {
        let explained = UNREACHED.iter().any(|(n, _)| n == name);
        assert!(
            required.contains(name) != explained,
            "mark {name:?} must be either required by a scenario test or listed in UNREACHED (and not both)"
        );
    }
    for (name, _) in UNREACHED {
        assert!(MARKS.iter().any(|(n, _)| n == name), "UNREACHED names {name:?}, which is not a mark");
    }
}

/// Marks are per run even with runs on two threads at once: a thread
/// running single-node-crash (one broker, no controllers) and one running
/// controller-leader-kill (controllers only, no records) side by side never
/// see each other's marks, and each run starts from none.
#[test]
fn runs_on_two_threads_at_once_keep_their_marks_apart() {
    let run_all = |scenario: &str| -> Vec<RunCoverage> {
        (1..=6)
            .map(|seed| scenarios::run::run_seed(&dlog_tests::scenario_options(scenario, seed, &[])).expect("the run ends").coverage)
            .collect()
    };
    let (single, kill) = std::thread::scope(|scope| {
        let single = scope.spawn(|| run_all("single-node-crash"));
        let kill = scope.spawn(|| run_all("controller-leader-kill"));
        (single.join().expect("no panic"), kill.join().expect("no panic"))
    });
    for (seed, coverage) in (1..).zip(&single) {
        assert!(
            coverage.marks.keys().all(|name| name.starts_with("storage.")),
            "single-node-crash seed {seed} shows another run's marks: {:?}",
            coverage.marks
        );
    }
    for (seed, coverage) in (1..).zip(&kill) {
        assert!(coverage.marks.keys().all(|name| name.starts_with("raft.")), "leader-kill seed {seed}: {:?}", coverage.marks);
        assert!(coverage.marks.contains_key("raft.leader.elected"), "leader-kill seed {seed}: {:?}", coverage.marks);
    }
    assert!(single.iter().any(|c| !c.marks.is_empty()), "single-node-crash reaches some mark in seeds 1..6");
}

#[test]
fn run_prints_its_marks_and_sweep_prints_the_table() {
    let run = Command::new(workspace_binary("dlog-sim"))
        .args(["run", "--scenario", "replication-chaos", "--seed", "3"])
        .output()
        .expect("dlog-sim runs");
    let text = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{text}");
    assert!(text.lines().any(|l| l.starts_with("marks: ") && l.contains("raft.leader.elected (")), "{text}");
    let sweep = Command::new(workspace_binary("dlog-sim"))
        .args(["sweep", "--scenario", "controller-leader-kill", "--seeds", "1..3", "--jobs", "2", "--marks"])
        .output()
        .expect("dlog-sim runs");
    let text = String::from_utf8_lossy(&sweep.stdout);
    assert_eq!(sweep.status.code(), Some(0), "{text}");
    assert!(text.contains("marks over 3 runs ("), "{text}");
    assert!(text.lines().any(|l| l.contains("raft.leader.elected") && l.contains("3 runs")), "{text}");
    assert!(text.lines().any(|l| l.contains("storage.compaction.segment") && l.contains("never reached")), "{text}");
}
