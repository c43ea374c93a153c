//! Shrinking and schedule files: a fault plan survives its file, a
//! malformed file is refused naming its line, a seed run with its own
//! schedule from a file is the same run (same trace hash, same history),
//! and `dlog-sim shrink` cuts a failing single-node-crash seed's schedule
//! (log.flush=never) to far fewer faults that still fail with one of the
//! original anomalies, with a replay command (`run ... --schedule FILE`)
//! that reproduces the verdict.
#![cfg(madsim)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use dlog_tests::{scenario_options, workspace_binary};
use scenarios::run::{fault_plan, run_seed, RunOptions};
use sim::nemesis::FaultPlan;

/// The schedule-driven scenarios (controller-leader-kill has none).
const PLAN_SCENARIOS: &[&str] = &["single-node-crash", "controller-chaos", "replication-chaos", "group-chaos"];

/// A fresh directory for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlog-sim-shrink-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn dlog_sim(args: &[&str]) -> Output {
    Command::new(workspace_binary("dlog-sim")).args(args).output().expect("dlog-sim runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The anomaly names of a `dlog-sim run` verdict (the table after `anomalies:`).
fn anomalies_of_run(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip_while(|line| *line != "anomalies:")
        .skip(1)
        .take_while(|line| line.starts_with("  ") && !line.trim().is_empty())
        .filter(|line| !line.ends_with("(allowed)"))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The trace hash a `dlog-sim run` printed.
fn trace_hash_of_run(text: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("ran: ")).unwrap_or_else(|| panic!("no `ran:` line:\n{text}"));
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn every_scenario_plan_survives_its_file() {
    for scenario in PLAN_SCENARIOS {
        for seed in 1..=40 {
            let plan = fault_plan(&scenario_options(scenario, seed, &[])).unwrap();
            let text = plan.to_file_text();
            assert_eq!(FaultPlan::parse(&text).as_ref(), Ok(&plan), "{scenario} seed {seed}:\n{text}");
        }
    }
    // Power losses name several nodes; quick faults lay many out.
    let plan = fault_plan(&scenario_options("replication-chaos", 1, &["nemesis.power_loss=true", "nemesis.gap_ms=300-1500"])).unwrap();
    assert!(plan.faults.iter().any(|f| matches!(f.fault, sim::nemesis::Fault::PowerLoss { .. })), "{plan}");
    assert_eq!(FaultPlan::parse(&plan.to_file_text()), Ok(plan));
}

#[test]
fn a_malformed_schedule_is_refused_naming_its_line() {
    let dir = scratch("malformed");
    let file = dir.join("bad.schedule");
    std::fs::write(
        &file,
        "# a schedule with a typo\ndlog-sim-schedule 1\nseed 7\nhealed-at-ms 15000\nat 1200 crash node=broker-1 down_ms=850\nat 2500 pause node=broker-1 pasue_ms=300\n",
    )
    .unwrap();
    let error = FaultPlan::parse(&std::fs::read_to_string(&file).unwrap()).unwrap_err();
    assert_eq!(error.line, 6, "{error}");
    let output = dlog_sim(&["run", "--scenario", "single-node-crash", "--seed", "7", "--schedule", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stderr(&output).contains("line 6: missing field pause_ms"), "{}", stderr(&output));

    // Well-formed, but for another cluster: a node single-node-crash does not have.
    std::fs::write(&file, "dlog-sim-schedule 1\nseed 7\nhealed-at-ms 15000\nat 1200 crash node=broker-2 down_ms=850\n").unwrap();
    let output = dlog_sim(&["run", "--scenario", "single-node-crash", "--seed", "7", "--schedule", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("names node \"broker-2\""), "{}", stderr(&output));

    // controller-leader-kill has no plan: no schedule, no shrinking.
    let output = dlog_sim(&["run", "--scenario", "controller-leader-kill", "--seed", "1", "--schedule", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("controller-leader-kill has no fault schedule"), "{}", stderr(&output));
    let output = dlog_sim(&["shrink", "--scenario", "controller-leader-kill", "--seed", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot shrink: controller-leader-kill"), "{}", stderr(&output));
}

#[test]
fn a_seed_run_with_its_own_schedule_from_a_file_is_the_same_run() {
    // In the library, every plan-driven scenario (group-chaos keeps its
    // member schedule, drawn from the seed).
    for scenario in PLAN_SCENARIOS {
        let options = scenario_options(scenario, 3, &[]);
        let plain = run_seed(&options).unwrap();
        let plan = FaultPlan::parse(&fault_plan(&options).unwrap().to_file_text()).unwrap();
        let replayed = run_seed(&RunOptions { schedule: Some(plan), ..options }).unwrap();
        assert_eq!(replayed.trace_hash, plain.trace_hash, "{scenario}");
        assert_eq!(replayed.history, plain.history, "{scenario}");
        assert_eq!(replayed.schedule, plain.schedule, "{scenario}");
    }
    // Through the command line, against the published hash of seed 3.
    let dir = scratch("own");
    let file = dir.join("seed-3.schedule");
    let plan = fault_plan(&scenario_options("single-node-crash", 3, &[])).unwrap();
    std::fs::write(&file, plan.to_file_text()).unwrap();
    let plain = dlog_sim(&["run", "--scenario", "single-node-crash", "--seed", "3"]);
    let from_file = dlog_sim(&["run", "--scenario", "single-node-crash", "--seed", "3", "--schedule", file.to_str().unwrap()]);
    assert_eq!(plain.status.code(), Some(0), "{}", stdout(&plain));
    assert_eq!(from_file.status.code(), Some(0), "{}{}", stdout(&from_file), stderr(&from_file));
    assert_eq!(trace_hash_of_run(&stdout(&plain)), "706906f0cc7b352d");
    assert_eq!(trace_hash_of_run(&stdout(&from_file)), "706906f0cc7b352d");
}

#[test]
fn shrinking_a_log_flush_never_seed_keeps_its_anomaly_with_far_fewer_faults() {
    const CONFIG: &str = "log.flush=never";
    // The seed of 1..50 with the most faults that fails (seed 7: 10 faults).
    let (seed, original) = (1..=50u64)
        .filter_map(|seed| {
            let options = scenario_options("single-node-crash", seed, &[CONFIG]);
            let outcome = run_seed(&options).unwrap();
            let anomalies: BTreeSet<String> = outcome.report.disallowed().iter().map(|s| s.to_string()).collect();
            (!anomalies.is_empty()).then(|| (seed, fault_plan(&options).unwrap(), anomalies))
        })
        .max_by_key(|(seed, plan, _)| (plan.faults.len(), std::cmp::Reverse(*seed)))
        .map(|(seed, plan, anomalies)| (seed, (plan, anomalies)))
        .expect("log.flush=never fails some seed of 1..50");
    let (original_plan, original_anomalies) = original;
    assert!(original_plan.faults.len() >= 6, "seed {seed}: {original_plan}");

    let dir = scratch("shrink");
    let out = dir.join("shrunk.schedule");
    let seed_text = seed.to_string();
    let output = dlog_sim(&[
        "shrink", "--scenario", "single-node-crash", "--seed", &seed_text, "--config", CONFIG, "--jobs", "2", "--out",
        out.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    println!("{text}");
    assert!(text.lines().any(|l| l.starts_with("try ")), "progress lines:\n{text}");

    // Far fewer faults, in the printout and in the file.
    let shrunk = FaultPlan::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let before = original_plan.faults.len();
    let after = shrunk.faults.len();
    assert!(
        text.contains(&format!(": {before} faults -> {after} faults")),
        "the fault counts before and after:\n{text}"
    );
    assert!(after * 3 <= before, "seed {seed}: {before} faults shrank only to {after}:\n{shrunk}");

    // The replay command it printed reproduces the failure, with one of the
    // original anomalies and the same verdict shrink reported.
    let replay = text.lines().find_map(|l| l.strip_prefix("replay: ")).expect("a replay line");
    let expected = format!(
        "dlog-sim run --scenario single-node-crash --seed {seed} --config {CONFIG} --schedule {}",
        out.display()
    );
    assert_eq!(replay, expected);
    let args: Vec<&str> = replay.split_whitespace().skip(1).collect();
    let replayed = dlog_sim(&args);
    let replayed_text = stdout(&replayed);
    assert_eq!(replayed.status.code(), Some(1), "the replay is invalid:\n{replayed_text}");
    let anomalies = anomalies_of_run(&replayed_text);
    assert!(
        anomalies.intersection(&original_anomalies).next().is_some(),
        "replayed anomalies {anomalies:?}, originally {original_anomalies:?}"
    );
    let verdict = format!("verdict: INVALID ({})", anomalies.iter().cloned().collect::<Vec<_>>().join(", "));
    assert!(text.contains(&verdict), "shrink's verdict is the replay's ({verdict}):\n{text}");

    // And twice in a row the same (the replay is a replay).
    let again = dlog_sim(&args);
    assert_eq!(trace_hash_of_run(&stdout(&again)), trace_hash_of_run(&replayed_text));

    // A sweep takes the schedule too, and its replay commands carry it.
    let json = dir.join("sweep.jsonl");
    let output = dlog_sim(&[
        "sweep", "--scenario", "single-node-crash", "--seeds", &format!("{seed}..{seed}"), "--config", CONFIG, "--schedule",
        out.to_str().unwrap(), "--json", json.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&json).unwrap().trim()).unwrap();
    assert_eq!(line["replay"], serde_json::json!(expected));
    let swept: BTreeSet<String> = line["anomalies"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    assert_eq!(swept, anomalies);
}

#[test]
fn shrinking_group_chaos_drops_member_faults_too() {
    // With generations unfenced, a zombie's commit moves the group's
    // offset back; the member schedule (drawn from the seed) is part of
    // the plan and is shrunk with the broker faults.
    const CONFIG: &str = "group.fence.generations=false";
    let options = scenario_options("group-chaos", 2, &[CONFIG]);
    let original = fault_plan(&options).unwrap();
    let members_before = original.members.as_ref().expect("group-chaos lists its member schedule").len();
    assert!(run_seed(&options).unwrap().report.disallowed().contains(&"commit-regression"));

    let dir = scratch("group");
    let out = dir.join("group.schedule");
    let output = dlog_sim(&["shrink", "--scenario", "group-chaos", "--seed", "2", "--config", CONFIG, "--out", out.to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    let shrunk = FaultPlan::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let members_after = shrunk.members.as_ref().expect("the shrunk plan lists members").len();
    assert!(members_after < members_before, "{members_before} member faults, still {members_after}:\n{text}");
    assert!(text.contains(&format!("member schedule: {members_before} member faults -> {members_after}")), "{text}");

    let replay = text.lines().find_map(|l| l.strip_prefix("replay: ")).expect("a replay line");
    let args: Vec<&str> = replay.split_whitespace().skip(1).collect();
    let replayed = dlog_sim(&args);
    let replayed_text = stdout(&replayed);
    assert_eq!(replayed.status.code(), Some(1), "{replayed_text}");
    assert!(anomalies_of_run(&replayed_text).contains("commit-regression"), "{replayed_text}");
}
