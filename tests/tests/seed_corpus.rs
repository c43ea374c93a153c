//! Replays the seed corpus (`scenarios/seeds/`): every seed that ever
//! failed, with the settings it failed under, must be valid now. A seed
//! that fails again is named with what it once found and its replay command.
#![cfg(madsim)]

use scenarios::corpus::{corpus_dir, load};

#[test]
fn every_seed_of_the_corpus_is_valid() {
    let entries = load(&corpus_dir()).expect("the corpus parses");
    assert!(!entries.is_empty(), "the corpus has entries");
    let mut bad = Vec::new();
    for entry in &entries {
        let options = scenarios::run::RunOptions { scenario: entry.scenario.clone(), seed: entry.seed, config: entry.config.clone(), schedule: None };
        let replay = scenarios::run::replay_command(&options);
        match scenarios::run::run_seed(&options) {
            Ok(outcome) if outcome.report.valid == checker::Validity::Valid => {}
            Ok(outcome) => bad.push(format!("{}: {:?}; it once found: {} (replay: {replay})", entry.origin, outcome.report.disallowed(), entry.note)),
            Err(error) => bad.push(format!("{}: {error}; it once found: {} (replay: {replay})", entry.origin, entry.note)),
        }
    }
    assert!(bad.is_empty(), "corpus seeds fail again:\n{}", bad.join("\n"));
}
