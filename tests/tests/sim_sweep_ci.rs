//! Sweeps for CI, through the `dlog-sim` binary: `--shard I/N` splits a
//! seed range so N jobs run each seed exactly once with the verdicts an
//! unsharded sweep gives, `--json` writes a line per seed, `--junit` a
//! report a CI can read whose failing cases carry their replay command,
//! and a bad `--shard` is refused with a message, not a panic.
#![cfg(madsim)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dlog_tests::workspace_binary;

const SCENARIO: &str = "single-node-crash";
/// A teaching knob and a seed it is known to make invalid (README,
/// "Teaching knobs": the broker acknowledges before fsync).
const FLUSH_NEVER: &str = "log.flush=never";
const FLUSH_NEVER_INVALID_SEED: u64 = 3;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlog-sweep-ci-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn dlog_sim(args: &[&str]) -> Output {
    Command::new(workspace_binary("dlog-sim")).args(args).output().expect("dlog-sim runs")
}

fn describe(output: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs a sweep of seeds 1..12 writing `--json`; returns its records.
fn sweep_json(dir: &Path, shard: Option<&str>) -> Vec<serde_json::Value> {
    let path = dir.join(format!("sweep-{}.jsonl", shard.unwrap_or("all").replace('/', "-of-")));
    let path_text = path.to_str().unwrap().to_string();
    let mut args = vec!["sweep", "--scenario", SCENARIO, "--seeds", "1..12", "--jobs", "2", "--json", &path_text];
    if let Some(shard) = shard {
        args.extend(["--shard", shard]);
    }
    let output = dlog_sim(&args);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let runs = if shard.is_some() { 4 } else { 12 };
    assert!(
        stdout.contains(&format!("sweep {SCENARIO} seeds 1..12: {runs} runs, {runs} valid, 0 invalid, 0 failed")),
        "the summary line keeps its form:\n{stdout}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines().map(|line| serde_json::from_str(line).expect("each line is one JSON object")).collect()
}

/// A record without the one figure that varies from run to run.
fn without_wall_time(record: &serde_json::Value) -> serde_json::Value {
    let mut record = record.clone();
    assert!(record["wall_ms"].is_u64(), "{record}");
    record.as_object_mut().unwrap().remove("wall_ms");
    record
}

#[test]
fn three_shards_cover_the_unsharded_sweep_exactly_once_with_the_same_verdicts() {
    let dir = scratch("shards");
    let whole = sweep_json(&dir, None);
    let seeds: Vec<u64> = whole.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, (1..=12).collect::<Vec<_>>(), "one line per seed, in seed order");
    for record in &whole {
        assert_eq!(record["scenario"], SCENARIO);
        assert_eq!(record["verdict"], "valid", "{record}");
        assert_eq!(record["anomalies"], serde_json::json!([]));
        assert!(record["simulated_seconds"].as_f64().unwrap() > 1.0, "{record}");
        assert!(record["events"].as_u64().unwrap() > 0, "{record}");
        assert_eq!(record["config"], serde_json::json!([]));
        assert_eq!(record["replay"], format!("dlog-sim run --scenario {SCENARIO} --seed {}", record["seed"]));
    }
    let mut from_shards = Vec::new();
    for index in 1..=3u64 {
        let shard = format!("{index}/3");
        let records = sweep_json(&dir, Some(&shard));
        for record in &records {
            let seed = record["seed"].as_u64().unwrap();
            assert_eq!((seed - 1) % 3 + 1, index, "seed {seed} belongs to shard {index}/3");
        }
        from_shards.extend(records);
    }
    from_shards.sort_by_key(|r| r["seed"].as_u64().unwrap());
    let strip = |records: &[serde_json::Value]| records.iter().map(without_wall_time).collect::<Vec<_>>();
    assert_eq!(strip(&from_shards), strip(&whole), "the shards together are the unsharded sweep, figure for figure");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn junit_report_parses_and_a_failing_seed_carries_its_replay_command() {
    let dir = scratch("junit");
    let junit = dir.join("sweep.xml");
    let json = dir.join("sweep.jsonl");
    let seeds = format!("{}..{}", FLUSH_NEVER_INVALID_SEED, FLUSH_NEVER_INVALID_SEED + 1);
    let output = dlog_sim(&[
        "sweep",
        "--scenario",
        SCENARIO,
        "--seeds",
        &seeds,
        "--jobs",
        "2",
        "--config",
        FLUSH_NEVER,
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "an invalid seed makes the sweep exit 1\n{}", describe(&output));

    let xml = std::fs::read_to_string(&junit).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("the report is XML: {e}\n{xml}"));
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
    assert_eq!(suites.len(), 1, "one testsuite per sweep");
    let cases: Vec<_> = suites[0].children().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 2, "one testcase per seed");
    assert_eq!(suites[0].attribute("tests"), Some("2"));
    for case in &cases {
        assert_eq!(case.attribute("classname"), Some(SCENARIO));
        assert!(case.attribute("time").unwrap().parse::<f64>().is_ok(), "time is seconds");
    }

    let name = format!("seed-{FLUSH_NEVER_INVALID_SEED}");
    let case = cases.iter().find(|c| c.attribute("name") == Some(name.as_str())).expect("the invalid seed has a case");
    let failure = case.children().find(|n| n.has_tag_name("failure")).expect("an invalid seed's case carries a failure");
    let replay = format!("dlog-sim run --scenario {SCENARIO} --seed {FLUSH_NEVER_INVALID_SEED} --config {FLUSH_NEVER}");
    let message = failure.attribute("message").unwrap();
    assert!(message.starts_with("INVALID (") && message.contains(&replay), "{message}");
    assert!(failure.text().unwrap_or_default().contains(&format!("replay: {replay}")), "{xml}");
    let failures = cases.iter().filter(|c| c.children().any(|n| n.has_tag_name("failure"))).count();
    assert_eq!(suites[0].attribute("failures"), Some(failures.to_string().as_str()));

    // The JSON lines say the same.
    let records: Vec<serde_json::Value> =
        std::fs::read_to_string(&json).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let record = &records[0];
    assert_eq!(record["seed"], FLUSH_NEVER_INVALID_SEED);
    assert_eq!(record["verdict"], "invalid");
    assert!(!record["anomalies"].as_array().unwrap().is_empty());
    assert_eq!(record["config"], serde_json::json!([FLUSH_NEVER]));
    assert_eq!(record["replay"], replay);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("replay: {replay}")), "stdout names it too:\n{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_shard_is_refused_with_a_message() {
    for (bad, says) in [("0/3", "1..=3"), ("4/3", "1..=3"), ("1/0", "at least 1"), ("two/3", "I/N"), ("1-3", "I/N"), ("1/3/4", "I/N"), ("", "I/N")] {
        let output = dlog_sim(&["sweep", "--scenario", SCENARIO, "--seeds", "1..3", "--shard", bad]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--shard {bad:?}\n{}", describe(&output));
        assert!(stderr.contains("--shard") && stderr.contains(says), "--shard {bad:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "--shard {bad:?}: {stderr}");
        assert!(output.stdout.is_empty(), "--shard {bad:?}: nothing ran\n{}", describe(&output));
    }
}
