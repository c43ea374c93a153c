//! The txn-chaos scenario: transactions across partitions and topics stay
//! atomic, read_committed consumers never read an aborted record, and a
//! consume-transform-produce job forwards each input exactly once through
//! its own zombie handovers, while brokers (so transaction coordinators,
//! group coordinators and partition leaders) and controllers fail; each
//! teaching knob breaks one guarantee in some seed of a bounded set, and
//! the checker names it.
#![cfg(madsim)]

const SCENARIO: &str = "txn-chaos";

#[test]
fn transactions_stay_atomic_and_exactly_once_over_100_seeds() {
    dlog_tests::assert_every_seed_valid(SCENARIO, 1..=100, &[], |seed, outcome| {
        let stats = &outcome.report.stats;
        let count = |name: &str| stats.get(name).and_then(|n| n.as_u64()).unwrap_or(0);
        assert!(count("txn_ok") > 0, "seed {seed}: no transaction committed: {stats:?}");
        assert!(count("txn_fail") > 0, "seed {seed}: no transaction aborted: {stats:?}");
    });
}

fn first_seed_showing(seeds: std::ops::RangeInclusive<u64>, config: &[&str], anomalies: &[&str]) -> u64 {
    dlog_tests::first_seed_showing(SCENARIO, seeds, config, anomalies)
}

#[test]
fn read_committed_without_the_aborted_index_reads_aborted_records() {
    let seed = first_seed_showing(1..=10, &["transaction.aborted.index.enable=false"], &["G1a"]);
    println!("transaction.aborted.index.enable=false: seed {seed}");
}

#[test]
fn ambiguous_retries_without_idempotence_duplicate_records() {
    let seed = first_seed_showing(1..=10, &["client.enable.idempotence=false"], &["duplicate"]);
    println!("client.enable.idempotence=false: seed {seed}");
}

/// KIP-890 part 1 off: in seed 796 a produce the transactional producer
/// had given up on reaches its partition's leader after the transaction's
/// abort marker and opens a transaction no coordinator knows, so the
/// partition's last stable offset stops for good and the read_committed
/// consumers never drain (the same seed is valid with the defense on: it
/// is in the seed corpus).
#[test]
fn without_partition_verification_a_late_produce_leaves_a_transaction_hanging() {
    let options = dlog_tests::scenario_options(SCENARIO, 796, &["transaction.partition.verification.enable=false"]);
    match scenarios::run::run_seed(&options) {
        Err(error) => assert!(error.to_string().contains("liveness"), "seed 796 failed otherwise: {error}"),
        Ok(outcome) => panic!("seed 796 with verification off ran to the end: {:?}", outcome.report.valid),
    }
}
