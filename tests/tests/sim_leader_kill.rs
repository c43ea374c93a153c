//! The controller-leader-kill scenario: a nemesis crashes each new Raft
//! leader soon after its election. Correct Raft keeps state machine safety
//! (no two controllers apply different entries at one index); the Figure 8
//! teaching knob breaks it, and the invariant names it.
#![cfg(madsim)]

use std::sync::Mutex;


const SCENARIO: &str = "controller-leader-kill";
const FIGURE_8_KNOB: &str = "raft.commit_old_term_entries_by_count=true";

#[test]
fn controllers_never_apply_different_entries_at_one_index_over_60_seeds() {
    dlog_tests::assert_every_seed_valid(SCENARIO, 1..=60, &[], |seed, outcome| {
        let kills: u64 = outcome
            .notes
            .iter()
            .find_map(|n| n.strip_prefix("leaders killed: ").and_then(|v| v.parse().ok()))
            .expect("the scenario reports its kills");
        assert!(kills >= 50, "seed {seed}: the killer should strike many leaders, struck {kills}");
    });
}

#[test]
fn committing_old_term_entries_by_count_breaks_state_machine_safety() {
    let caught = Mutex::new(None);
    let failures = dlog_tests::sweep_scenario(SCENARIO, 1..=300, &[FIGURE_8_KNOB], |seed, outcome| {
        if outcome.report.disallowed().contains(&"state-machine-safety") {
            let witness = outcome.report.anomalies["state-machine-safety"].examples[0].text.clone();
            let why = outcome.notes.iter().find(|n| n.starts_with("why: ")).cloned().unwrap_or_default();
            *caught.lock().unwrap() = Some((seed, witness, why));
            return true;
        }
        false
    });
    let caught = caught.into_inner().unwrap();
    let Some((seed, witness, why)) = caught else {
        panic!("no seed in 1..=300 broke state machine safety with {FIGURE_8_KNOB}; failures: {failures:?}");
    };
    println!("seed {seed}: {witness}\n{why}");
    assert!(witness.contains("applied an entry of term"), "the witness names the index and terms: {witness}");
    assert!(why.contains("Figure 8"), "the run explains what broke: {why}");
}
