//! BUGGIFY: with `--buggify` each seed switches some of the broker's
//! BUGGIFY sites on and they fire now and then (`broker::testbed`). A
//! buggified path is legal behaviour, so every run must stay valid; the
//! sites must actually fire; a seed replays exactly, header included; and
//! without the flag nothing fires.
#![cfg(madsim)]

use std::process::Command;
use std::sync::Mutex;

use dlog_tests::workspace_binary;
use scenarios::coverage::CoverageTally;
use scenarios::run::BUGGIFY_PAIR;

const SEEDS: std::ops::RangeInclusive<u64> = 1..=30;

/// Sweeps with BUGGIFY on; asserts every seed valid; returns the coverage.
fn buggified(scenario: &str) -> CoverageTally {
    let tally = Mutex::new(CoverageTally::default());
    dlog_tests::assert_every_seed_valid(scenario, SEEDS, &[BUGGIFY_PAIR], |seed, outcome| {
        assert!(outcome.coverage.buggify, "seed {seed}: BUGGIFY is on for the run");
        assert_eq!(outcome.coverage.enabled_sites, broker::testbed::enabled_sites(seed), "seed {seed}: the seed decides the sites");
        for site in outcome.coverage.fired.keys() {
            assert!(outcome.coverage.enabled_sites.contains(site), "seed {seed}: {site} fired but was not enabled");
        }
        tally.lock().unwrap().add(seed, &outcome.coverage);
    });
    tally.into_inner().unwrap()
}

#[test]
fn single_node_crash_stays_valid_with_buggify_over_30_seeds() {
    let tally = buggified("single-node-crash");
    assert!(!tally.fired.is_empty(), "no BUGGIFY site fired in 30 seeds:\n{}", tally.render());
    assert!(tally.fired.contains_key("storage.read.short"), "short reads fired in some seed:\n{}", tally.render());
}

#[test]
fn replication_chaos_stays_valid_with_buggify_over_30_seeds() {
    let tally = buggified("replication-chaos");
    assert!(!tally.fired.is_empty(), "no BUGGIFY site fired in 30 seeds:\n{}", tally.render());
    // Replication-chaos reaches every site: storage, Raft and the controller loop.
    for (site, _) in broker::testbed::BUGGIFY_SITES {
        assert!(tally.fired.contains_key(site), "{site} never fired in 30 seeds:\n{}", tally.render());
    }
}

#[test]
fn without_the_flag_no_site_fires() {
    let failures = dlog_tests::sweep_scenario("replication-chaos", 1..=10, &[], |seed, outcome| {
        assert!(!outcome.coverage.buggify && outcome.coverage.enabled_sites.is_empty(), "seed {seed}");
        assert!(outcome.coverage.fired.is_empty(), "seed {seed}: {:?} fired without --buggify", outcome.coverage.fired);
        false
    });
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn a_buggified_seed_replays_exactly_and_says_which_sites_were_on() {
    // A seed that enables some site and fires it.
    let seed = (1..=30).find(|s| !broker::testbed::enabled_sites(*s).is_empty()).expect("some seed enables a site");
    let run = || {
        let output = Command::new(workspace_binary("dlog-sim"))
            .args(["run", "--scenario", "replication-chaos", "--seed", &seed.to_string(), "--buggify"])
            .output()
            .expect("dlog-sim runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(output.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
        text
    };
    let text = run();
    let sites = broker::testbed::enabled_sites(seed).join(", ");
    assert!(text.contains(&format!("buggify: on, sites enabled for seed {seed}: {sites}")), "the header names the sites:\n{text}");
    assert!(text.lines().any(|l| l.starts_with("buggify fired: ")), "{text}");
    assert!(
        text.contains(&format!("replay: dlog-sim run --scenario replication-chaos --seed {seed} --buggify")),
        "the replay command keeps --buggify:\n{text}"
    );
    // Two processes: `--check-determinism` runs twice in one process, where
    // some seeds differ even without BUGGIFY (controller-chaos seed 12 on
    // main), so it cannot tell BUGGIFY's determinism apart.
    assert_eq!(text, run(), "two runs of one buggified seed print the same (trace hash, history, sites fired)");
}
