//! The group-chaos scenario: a consumer group on a replicated topic, with
//! replicated `__consumer_offsets`, consumes every acknowledged record,
//! never moves a committed offset back and never gives a partition to two
//! members of one generation, while members crash, pause past their
//! session and leave, and brokers (so the group coordinator) and
//! controllers fail; each teaching knob breaks one of these in some seed
//! of a bounded set, and the checker names it.
#![cfg(madsim)]

const SCENARIO: &str = "group-chaos";

#[test]
fn the_group_consumes_everything_and_commits_only_forward_over_150_seeds() {
    dlog_tests::assert_every_seed_valid(SCENARIO, 1..=150, &[], |seed, outcome| {
        let stats = &outcome.report.stats;
        assert!(stats.get("commit_ops").and_then(|n| n.as_u64()).is_some_and(|n| n > 0), "seed {seed}: the group committed nothing: {stats:?}");
        assert!(stats.get("assignment_ops").and_then(|n| n.as_u64()).is_some_and(|n| n > 0), "seed {seed}: no member got an assignment: {stats:?}");
    });
}

fn first_seed_showing(seeds: std::ops::RangeInclusive<u64>, config: &[&str], anomalies: &[&str]) -> u64 {
    dlog_tests::first_seed_showing(SCENARIO, seeds, config, anomalies)
}

#[test]
fn committing_before_processing_loses_records_for_the_group() {
    let seed = first_seed_showing(1..=30, &["client.commit.before.process=true"], &["unseen", "lost-write"]);
    println!("client.commit.before.process=true: seed {seed}");
}

#[test]
fn accepting_commits_from_old_generations_moves_a_committed_offset_back() {
    let seed = first_seed_showing(1..=30, &["group.fence.generations=false"], &["commit-regression"]);
    println!("group.fence.generations=false: seed {seed}");
}
