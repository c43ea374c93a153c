//! The replication-chaos scenario: a topic replicated on three brokers
//! (min.insync.replicas=2, no fsync per batch) keeps every acknowledged
//! acks=all write while brokers and controllers fail one at a time; each
//! teaching knob loses acknowledged writes in some seed of a bounded set,
//! and the checker names it.
#![cfg(madsim)]

const SCENARIO: &str = "replication-chaos";
/// Faults in quick succession: a second failure may strike before the
/// first was repaired (the knobs below need two failures in a row).
const QUICK_FAULTS: &str = "nemesis.gap_ms=300-1500";

#[test]
fn no_acknowledged_write_is_lost_over_100_seeds() {
    dlog_tests::assert_every_seed_valid(SCENARIO, 1..=100, &[], |_, _| {});
}

#[test]
fn no_acknowledged_write_is_lost_with_quick_faults_over_100_seeds() {
    dlog_tests::assert_every_seed_valid(SCENARIO, 1..=100, &[QUICK_FAULTS], |_, _| {});
}

fn first_seed_showing(seeds: std::ops::RangeInclusive<u64>, config: &[&str], anomalies: &[&str]) -> u64 {
    dlog_tests::first_seed_showing(SCENARIO, seeds, config, anomalies)
}

#[test]
fn acks_1_loses_acknowledged_writes_on_failover() {
    let seed = first_seed_showing(1..=100, &["client.acks=1"], &["lost-write", "inconsistent-offsets"]);
    println!("client.acks=1: seed {seed}");
}

#[test]
fn min_insync_replicas_1_loses_writes_when_the_leader_alone_in_the_isr_dies() {
    let seed = first_seed_showing(1..=300, &[QUICK_FAULTS, "min.insync.replicas=1"], &["lost-write", "inconsistent-offsets", "unseen"]);
    println!("min.insync.replicas=1: seed {seed}");
}

#[test]
fn truncating_to_the_high_watermark_loses_writes() {
    let seed = first_seed_showing(
        1..=300,
        &[QUICK_FAULTS, "replication.truncate_to_high_watermark=true"],
        &["lost-write", "inconsistent-offsets"],
    );
    println!("replication.truncate_to_high_watermark=true: seed {seed}");
}

#[test]
fn unclean_leader_election_loses_writes() {
    let seed = first_seed_showing(
        1..=500,
        &[QUICK_FAULTS, "unclean.leader.election.enable=true"],
        &["lost-write", "inconsistent-offsets", "unseen"],
    );
    println!("unclean.leader.election.enable=true: seed {seed}");
}

#[test]
fn losing_power_everywhere_at_once_loses_writes() {
    let seed = first_seed_showing(1..=50, &[QUICK_FAULTS, "nemesis.power_loss=true"], &["lost-write", "inconsistent-offsets", "unseen"]);
    println!("nemesis.power_loss=true: seed {seed}");
}

#[test]
fn a_seed_replays_byte_for_byte() {
    let options = dlog_tests::scenario_options(SCENARIO, 7, &[]);
    let first = scenarios::run::run_seed(&options).expect("runs");
    let second = scenarios::run::run_seed(&options).expect("runs");
    assert_eq!(first.trace_hash, second.trace_hash, "same seed, same frames, faults and disk operations");
    assert_eq!(first.history, second.history, "same seed, same history");
}
