//! Idempotent producers in the simulation: with
//! `client.enable.idempotence=true` the workloads' producers send with a
//! producer id and sequence numbers, and `client.retry.ambiguous=true` lets
//! them retry sends whose outcome is unknown (timeouts, connections lost
//! after sending). Without idempotence those retries duplicate records
//! (the `client.retry.ambiguous` teaching knob); with it, the partition
//! leader recognises each retry of a batch it already appended, including
//! across crashes (single-node-crash) and leader failovers
//! (replication-chaos: followers keep the producer state of what they
//! replicate), and the histories stay valid.
#![cfg(madsim)]

use std::sync::atomic::{AtomicU64, Ordering};

const IDEMPOTENT_RETRIES: &[&str] = &["client.enable.idempotence=true", "client.retry.ambiguous=true"];

fn no_duplicates_and_retries_recognised(scenario: &str, seeds: std::ops::RangeInclusive<u64>) {
    let recognised = AtomicU64::new(0);
    let acknowledged = AtomicU64::new(0);
    dlog_tests::assert_every_seed_valid(scenario, seeds.clone(), IDEMPOTENT_RETRIES, |_, outcome| {
        if outcome.coverage.marks.contains_key("producer_state.duplicate_answered") {
            recognised.fetch_add(1, Ordering::Relaxed);
        }
        let ok_sends = outcome.history.lines().filter(|l| l.contains(r#""type":"ok","f":"send""#)).count() as u64;
        acknowledged.fetch_add(ok_sends, Ordering::Relaxed);
    });
    let runs = seeds.count() as u64;
    // Producers get ids and their sends go through (a producer that could
    // not get an id would fail every send, and its history be trivially valid).
    assert!(acknowledged.load(Ordering::Relaxed) > runs * 200, "{scenario}: only {} acknowledged sends in {runs} runs", acknowledged.load(Ordering::Relaxed));
    assert!(recognised.load(Ordering::Relaxed) > 0, "{scenario}: no seed retried a batch the leader already had: the test exercised nothing");
    println!("{scenario}: retries recognised as duplicates in {} of {runs} runs", recognised.load(Ordering::Relaxed));
}

#[test]
fn idempotent_retries_through_crashes_never_duplicate_over_100_seeds() {
    no_duplicates_and_retries_recognised("single-node-crash", 1..=100);
}

#[test]
fn idempotent_retries_through_failovers_never_duplicate_over_100_seeds() {
    no_duplicates_and_retries_recognised("replication-chaos", 1..=100);
}
