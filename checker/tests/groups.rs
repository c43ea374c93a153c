//! Consumer-group operations (`commit`, `assignment`) and their anomalies,
//! `commit-regression` and `assignment-conflict`.
//!
//! Goal: each anomaly's minimal history is invalid with exactly that
//! anomaly and its near miss is valid (both taken from checker/HISTORY.md,
//! so the document and the code cannot drift apart); fail/info operations
//! constrain nothing; malformed values are rejected with their line; and the
//! operations leave the log checks exactly as they were, which is checked by
//! interleaving commits and assignments into generated log histories and
//! comparing the reports.

mod common;
use std::process::Command;

use checker::groups::{ASSIGNMENT_CONFLICT, COMMIT_REGRESSION};
use checker::history::{Event, EventType, GroupValue, History, Payload, Process, F};
use checker::{parse_jsonl, Report, Validity};
use common::{has, lacks, B};
use serde_json::{json, Value};

/// An invoke and a completion of type `ty` of a commit; `done` is the
/// completion's value (the invocation's when `None`).
fn commit_ty(b: &mut B, p: u32, ty: &str, group: &str, generation: i64, offsets: Value, done: Option<Value>) {
    let v = json!({"group": group, "generation": generation, "offsets": offsets});
    b.ev(json!(p), "invoke", "commit", v.clone());
    b.ev(json!(p), ty, "commit", done.unwrap_or(v));
}

fn commit(b: &mut B, p: u32, group: &str, generation: i64, offsets: Value) {
    commit_ty(b, p, "ok", group, generation, offsets, None);
}

fn assignment_ty(b: &mut B, p: u32, ty: &str, group: &str, generation: i64, member: &str, keys: &[&str]) {
    let v = json!({"group": group, "generation": generation, "member": member});
    b.ev(json!(p), "invoke", "assignment", v.clone());
    let done = if ty == "ok" {
        json!({"group": group, "generation": generation, "member": member, "keys": keys})
    } else {
        v
    };
    b.ev(json!(p), ty, "assignment", done);
}

fn assignment(b: &mut B, p: u32, group: &str, generation: i64, member: &str, keys: &[&str]) {
    assignment_ty(b, p, "ok", group, generation, member, keys);
}

fn check_text(text: &str) -> Report {
    checker::check(&parse_jsonl(text).expect("history parses"))
}

/// Anomaly names found, allowed or not.
fn found(r: &Report) -> Vec<&str> {
    r.anomalies.keys().map(String::as_str).collect()
}

/// The four examples of HISTORY.md's "Consumer groups" section, in order:
/// commit-regression minimal and near miss, assignment-conflict minimal and
/// near miss.
fn documented_examples() -> Vec<String> {
    let doc = include_str!("../HISTORY.md");
    let start = doc.find("\n## Consumer groups\n").expect("HISTORY.md has a Consumer groups section");
    let end = start + 1 + doc[start + 1..].find("\n## ").unwrap();
    let section = &doc[start..end];
    let blocks: Vec<String> = section.split("```").skip(1).step_by(2).map(|b| b.trim().to_string() + "\n").collect();
    assert_eq!(blocks.len(), 4, "{section}");
    blocks
}

#[test]
fn documented_minimal_histories_and_near_misses() {
    let ex = documented_examples();
    let r = check_text(&ex[0]);
    assert_eq!(r.valid, Validity::Invalid, "{}", r.render_text());
    assert_eq!(found(&r), vec![COMMIT_REGRESSION]);
    assert_eq!(r.disallowed(), vec![COMMIT_REGRESSION]);
    assert_eq!(r.anomalies[COMMIT_REGRESSION].count, 1);
    assert_eq!(r.model, "log");

    let r = check_text(&ex[1]);
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    assert!(r.anomalies.is_empty(), "{}", r.render_text());

    let r = check_text(&ex[2]);
    assert_eq!(r.valid, Validity::Invalid, "{}", r.render_text());
    assert_eq!(found(&r), vec![ASSIGNMENT_CONFLICT]);
    assert_eq!(r.anomalies[ASSIGNMENT_CONFLICT].count, 1);

    let r = check_text(&ex[3]);
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    assert!(r.anomalies.is_empty(), "{}", r.render_text());
}

#[test]
fn the_events_example_parses_and_is_valid() {
    let doc = include_str!("../HISTORY.md");
    let start = doc.find("### Consumer-group operations").unwrap();
    let block = doc[start..].split("```").nth(1).unwrap();
    let h = parse_jsonl(block.trim()).unwrap();
    assert_eq!(h.ops.len(), 2);
    assert_eq!(h.ops[0].f, F::Assignment);
    assert_eq!(h.ops[1].f, F::Commit);
    let r = checker::check(&h);
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    assert_eq!((r.stats["groups"].clone(), r.stats["commit_ops"].clone(), r.stats["assignment_ops"].clone()), (json!(1), json!(1), json!(1)));
}

#[test]
fn regression_witness_names_both_commits() {
    let mut b = B::new();
    commit(&mut b, 0, "g", 3, json!({"t-0": 2}));
    commit(&mut b, 1, "g", 4, json!({"t-0": 17, "t-1": 5})); // lines 3-4
    commit(&mut b, 2, "g", 5, json!({"t-0": 12, "t-1": 5})); // lines 5-6: t-0 went backwards
    let r = b.check();
    assert_eq!(r.valid, Validity::Invalid, "{}", r.render_text());
    assert_eq!(has(&r, COMMIT_REGRESSION), 1);
    let ex = &r.anomalies[COMMIT_REGRESSION].examples[0];
    assert_eq!(ex.key.as_deref(), Some("t-0"));
    assert_eq!(ex.ops.len(), 2);
    assert_eq!((ex.ops[0].process, ex.ops[0].invoke_line, ex.ops[0].completion_line), (1, 3, Some(4)));
    assert_eq!((ex.ops[1].process, ex.ops[1].invoke_line, ex.ops[1].completion_line), (2, 5, Some(6)));
    assert!(ex.ops.iter().all(|o| o.f == "commit" && o.outcome == "ok"));
    assert_eq!(
        ex.detail,
        json!({"group": "g", "key": "t-0", "earlier_op": 1, "earlier_offset": 17, "earlier_generation": 4,
               "later_op": 2, "later_offset": 12, "later_generation": 5})
    );
    assert!(ex.text.contains("group \"g\""), "{}", ex.text);
    assert!(ex.text.contains("process 1's commit (lines 3-4, generation 4) committed offset 17"), "{}", ex.text);
    assert!(ex.text.contains("lower offset 12"), "{}", ex.text);
    let text = r.render_text();
    assert!(text.starts_with("INVALID (log model)"), "{text}");
    assert!(
        text.contains(r#"process 2 commit (ok, lines 5-6): invoked {"generation":5,"group":"g","offsets":{"t-0":12,"t-1":5}}"#),
        "{text}"
    );
    let j = r.to_json();
    assert_eq!(j["anomalies"][COMMIT_REGRESSION]["examples"][0]["ops"][1]["completion"]["value"]["offsets"]["t-0"], json!(12));
}

#[test]
fn every_regressing_commit_and_key_counts_once() {
    let mut b = B::new();
    commit(&mut b, 0, "g", 1, json!({"t-0": 10, "t-1": 10}));
    commit(&mut b, 1, "g", 1, json!({"t-0": 20, "t-1": 20}));
    commit(&mut b, 2, "g", 1, json!({"t-0": 5, "t-1": 15})); // both keys regress: 2
    commit(&mut b, 3, "g", 1, json!({"t-0": 20})); // equal is fine
    commit(&mut b, 4, "g", 1, json!({"t-0": 19})); // 1 more
    let r = b.check();
    assert_eq!(has(&r, COMMIT_REGRESSION), 3, "{}", r.render_text());
    // Each witness is against the earliest commit of the largest offset.
    for ex in &r.anomalies[COMMIT_REGRESSION].examples {
        assert_eq!(ex.detail["earlier_op"], json!(1), "{}", ex.text);
        assert_eq!(ex.detail["earlier_offset"], json!(20));
    }
}

#[test]
fn groups_and_keys_are_independent() {
    let mut b = B::new();
    commit(&mut b, 0, "g", 1, json!({"t-0": 10}));
    commit(&mut b, 1, "h", 1, json!({"t-0": 3})); // another group
    commit(&mut b, 0, "g", 1, json!({"t-1": 3})); // another key
    commit(&mut b, 1, "h", 1, json!({"t-0": 4}));
    let r = b.check();
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    assert_eq!(r.stats["groups"], json!(2));
    commit(&mut b, 2, "h", 2, json!({"t-0": 3}));
    let r = b.check();
    assert_eq!(has(&r, COMMIT_REGRESSION), 1);
    assert_eq!(r.anomalies[COMMIT_REGRESSION].examples[0].detail["group"], json!("h"));
}

#[test]
fn overlapping_commits_may_land_in_either_order() {
    // The later commit nested inside the earlier one.
    let (g17, g12) = (
        json!({"group": "g", "generation": 4, "offsets": {"t-0": 17}}),
        json!({"group": "g", "generation": 4, "offsets": {"t-0": 12}}),
    );
    let mut b = B::new();
    b.ev(json!(0), "invoke", "commit", g17.clone());
    b.ev(json!(1), "invoke", "commit", g12.clone());
    b.ev(json!(1), "ok", "commit", g12.clone());
    b.ev(json!(0), "ok", "commit", g17.clone());
    assert_eq!(b.check().valid, Validity::Valid);
    // Events at one time follow the file order: completed, then invoked.
    let t = [
        r#"{"process":0,"type":"invoke","f":"commit","value":{"group":"g","generation":1,"offsets":{"k":2}},"time":5}"#,
        r#"{"process":0,"type":"ok","f":"commit","value":{"group":"g","generation":1,"offsets":{"k":2}},"time":5}"#,
        r#"{"process":1,"type":"invoke","f":"commit","value":{"group":"g","generation":1,"offsets":{"k":1}},"time":5}"#,
        r#"{"process":1,"type":"ok","f":"commit","value":{"group":"g","generation":1,"offsets":{"k":1}},"time":5}"#,
    ]
    .join("\n");
    assert_eq!(has(&check_text(&t), COMMIT_REGRESSION), 1);
}

#[test]
fn fail_info_and_unfinished_commits_constrain_nothing() {
    for ty in ["fail", "info"] {
        for done in [None, Some(json!(null))] {
            let mut b = B::new();
            commit(&mut b, 0, "g", 1, json!({"t-0": 5}));
            commit_ty(&mut b, 1, ty, "g", 1, json!({"t-0": 100}), done.clone()); // higher: ignored
            commit(&mut b, 2, "g", 1, json!({"t-0": 5}));
            commit_ty(&mut b, 3, ty, "g", 1, json!({"t-0": 1}), done.clone()); // lower: ignored
            commit(&mut b, 0, "g", 1, json!({"t-0": 6}));
            let r = b.check();
            assert_eq!(r.valid, Validity::Valid, "{ty} {done:?}: {}", r.render_text());
            lacks(&r, COMMIT_REGRESSION);
        }
    }
    // A commit in flight when its client crashed, or at the end: indeterminate.
    let mut b = B::new();
    commit(&mut b, 0, "g", 1, json!({"t-0": 5}));
    b.ev(json!(1), "invoke", "commit", json!({"group": "g", "generation": 1, "offsets": {"t-0": 1}}));
    b.ev(json!(1), "info", "crash", json!(null));
    b.ev(json!(2), "invoke", "commit", json!({"group": "g", "generation": 1, "offsets": {"t-0": 2}}));
    let h = b.history();
    assert!(h.ops.iter().filter(|o| o.f == F::Commit).skip(1).all(|o| o.outcome == checker::history::Outcome::Info));
    assert_eq!(checker::check(&h).valid, Validity::Valid);
}

#[test]
fn assignment_conflict_names_members_and_ops() {
    let mut b = B::new();
    assignment(&mut b, 0, "g", 4, "m-1", &["t-0", "t-1"]); // op 0
    assignment(&mut b, 1, "g", 4, "m-2", &["t-1", "t-2"]); // op 1
    assignment(&mut b, 2, "g", 4, "m-3", &["t-1", "t-2"]); // op 2: t-1 three owners, t-2 two
    assignment(&mut b, 0, "g", 4, "m-1", &["t-0", "t-1"]); // the same member again: no more owners
    let r = b.check();
    assert_eq!(r.valid, Validity::Invalid, "{}", r.render_text());
    assert_eq!(found(&r), vec![ASSIGNMENT_CONFLICT]);
    assert_eq!(has(&r, ASSIGNMENT_CONFLICT), 2);
    let exs = &r.anomalies[ASSIGNMENT_CONFLICT].examples;
    // Smallest first: t-2 (two owners) before t-1 (three).
    assert_eq!(exs[0].key.as_deref(), Some("t-2"));
    assert_eq!(exs[0].detail, json!({"group": "g", "generation": 4, "key": "t-2", "members": ["m-2", "m-3"], "ops": [1, 2]}));
    assert_eq!(exs[1].detail["members"], json!(["m-1", "m-2", "m-3"]));
    assert_eq!(exs[1].ops.iter().map(|o| o.op).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(exs[1].ops.iter().all(|o| o.f == "assignment" && o.outcome == "ok"));
    assert!(exs[0].text.contains("key \"t-2\" has 2 owners in generation 4 of group \"g\""), "{}", exs[0].text);
    assert!(exs[0].text.contains("member \"m-2\" (process 1's assignment, lines 3-4)"), "{}", exs[0].text);
}

#[test]
fn rebalances_other_groups_and_fail_info_assignments_are_not_conflicts() {
    let mut b = B::new();
    assignment(&mut b, 0, "g", 4, "m-1", &["t-0", "t-1"]);
    assignment(&mut b, 1, "g", 5, "m-2", &["t-0", "t-1"]); // next generation
    assignment(&mut b, 2, "h", 4, "m-2", &["t-0"]); // another group
    assignment(&mut b, 3, "g", -1, "m-3", &["t-0"]);
    assignment(&mut b, 4, "g", 5, "m-1", &[]); // an empty assignment
    for ty in ["fail", "info"] {
        assignment_ty(&mut b, 5, ty, "g", 4, "m-9", &[]);
    }
    let r = b.check();
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    assert!(r.anomalies.is_empty(), "{}", r.render_text());
    // A fail/info assignment with value null is fine too.
    let mut b = B::new();
    b.ev(json!(0), "invoke", "assignment", json!({"group": "g", "generation": 1, "member": "m"}));
    b.ev(json!(0), "info", "assignment", json!(null));
    assert_eq!(b.check().valid, Validity::Valid);
}

#[test]
fn mixed_with_log_operations_log_checks_still_run() {
    // An acknowledged send never read: `unseen`, with commits and
    // assignments about, one of them regressing.
    let mut b = B::new();
    assignment(&mut b, 9, "g", 1, "m-1", &["t-0"]);
    b.send_ok(0, "t-0", 1, 0).send_ok(0, "t-0", 2, 1);
    b.poll(1, &[("t-0", &[(0, 1)])]);
    commit(&mut b, 1, "g", 1, json!({"t-0": 1}));
    commit(&mut b, 2, "g", 1, json!({"t-0": 0}));
    let r = b.check();
    assert_eq!(r.model, "log");
    assert_eq!(has(&r, "unseen"), 1);
    assert_eq!(has(&r, COMMIT_REGRESSION), 1);
    assert_eq!(r.disallowed(), vec![COMMIT_REGRESSION, "unseen"]);
    // With register operations too: every model's checks.
    b.reg(7, "invoke", "write", Some("x"), json!(1)).reg(7, "ok", "write", Some("x"), json!(1));
    let r = b.check();
    assert_eq!(r.model, "log+register");
    assert_eq!(r.disallowed(), vec![COMMIT_REGRESSION, "unseen"]);
    // Group operations and registers alone: group checks and linearizability.
    let mut b = B::new();
    assignment(&mut b, 0, "g", 1, "m-1", &["t-0"]);
    assignment(&mut b, 1, "g", 1, "m-2", &["t-0"]);
    b.reg(2, "invoke", "write", Some("x"), json!(1)).reg(2, "ok", "write", Some("x"), json!(1));
    let r = b.check();
    assert_eq!(r.model, "log+register");
    assert_eq!(found(&r), vec![ASSIGNMENT_CONFLICT]);
    assert_eq!(r.stats["register_ops"], json!(1));
}

/// Interleaves a commit or assignment (by processes the log history does
/// not use) after every `every`-th line, at that line's time.
fn interleave(log: &str, every: usize) -> String {
    let mut out = Vec::new();
    let mut n = 0i64;
    for (i, line) in log.lines().enumerate() {
        out.push(line.to_string());
        if i % every != every - 1 {
            continue;
        }
        let t = serde_json::from_str::<Value>(line).unwrap()["time"].clone();
        let p = 100_000 + (n % 3);
        n += 1;
        let (f, inv, done) = if n % 2 == 0 {
            // Monotone offsets: no regression.
            let v = json!({"group": "g", "generation": n, "offsets": {"t-0": n, "t-1": n}});
            ("commit", v.clone(), v)
        } else {
            let v = json!({"group": "g", "generation": n, "member": format!("m-{p}")});
            let mut done = v.clone();
            done["keys"] = json!(["t-0", "t-1"]);
            ("assignment", v, done)
        };
        for (ty, v) in [("invoke", inv), ("ok", done)] {
            out.push(json!({"process": p, "type": ty, "f": f, "value": v, "time": t}).to_string());
        }
    }
    out.join("\n") + "\n"
}

#[test]
fn interleaved_group_operations_leave_the_log_checks_unchanged() {
    for seed in 0..4u64 {
        let log = checker::gen::log_history(&checker::gen::LogGen { events: 2000, seed, ..Default::default() });
        // Valid as generated, and with some anomalies planted.
        let corrupted = log.replacen("[[\"poll\",{\"t-", "[[\"poll\",{\"t-9\":[[100000,7]],\"t-", 2);
        for (text, planted) in [(log.clone(), false), (corrupted, true)] {
            let plain = check_text(&text);
            assert_eq!(plain.anomalies.is_empty(), !planted, "seed {seed}:\n{}", plain.render_text());
            let mixed = check_text(&interleave(&text, 7));
            assert!(mixed.stats["commit_ops"].as_u64().unwrap() > 10);
            assert_eq!(mixed.model, plain.model);
            assert_eq!(mixed.valid, plain.valid, "seed {seed}:\n{}", mixed.render_text());
            assert_eq!(mixed.allowed, plain.allowed);
            for k in ["graph_edges", "keys"] {
                assert_eq!(mixed.stats[k], plain.stats[k], "seed {seed} {k}");
            }
            // The same anomalies with the same counts and witnesses (ops are
            // renumbered, so compare the texts and event lines).
            assert_eq!(found(&mixed), found(&plain), "seed {seed}");
            for (name, e) in &plain.anomalies {
                let m = &mixed.anomalies[name];
                assert_eq!(m.count, e.count, "seed {seed} {name}");
                assert_eq!(m.examples.len(), e.examples.len(), "seed {seed} {name}");
            }
        }
    }
}

#[test]
fn events_round_trip() {
    let lines = [
        r#"{"process":3,"type":"invoke","f":"commit","value":{"group":"g","generation":-1,"member":"m-1","offsets":{"t-1":5,"t-0":17}},"time":1000}"#,
        r#"{"process":3,"type":"ok","f":"commit","value":{"group":"g","generation":-1,"member":"m-1","offsets":{"t-0":17,"t-1":5}},"time":1100}"#,
        r#"{"process":4,"type":"invoke","f":"assignment","value":{"group":"g","generation":4,"member":"m-1"},"time":1200}"#,
        r#"{"process":4,"type":"ok","f":"assignment","value":{"group":"g","generation":4,"member":"m-1","keys":["t-1","t-0"]},"time":1300}"#,
        r#"{"process":5,"type":"invoke","f":"commit","value":{"group":"g","generation":4,"offsets":{}},"time":1400}"#,
        r#"{"process":5,"type":"fail","f":"commit","value":null,"time":1500}"#,
    ];
    let h = parse_jsonl(&lines.join("\n")).unwrap();
    assert_eq!(h.ops.len(), 3);
    for (e, line) in h.events.iter().zip(lines) {
        assert_eq!(h.event_json(e), serde_json::from_str::<Value>(line).unwrap());
    }
    match &h.events[3].value {
        Payload::Group(Some(GroupValue::Assignment { keys: Some(ks), .. })) => {
            assert_eq!(ks.iter().map(|&k| h.key_name(k)).collect::<Vec<_>>(), vec!["t-1", "t-0"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.events[5].value, Payload::Group(None));
}

#[test]
fn malformed_commit_and_assignment_lines_are_rejected_with_their_line() {
    let c_inv = r#"{"process":0,"type":"invoke","f":"commit","value":{"group":"g","generation":4,"offsets":{"t-0":17}},"time":1}"#;
    let a_inv = r#"{"process":0,"type":"invoke","f":"assignment","value":{"group":"g","generation":4,"member":"m-1"},"time":1}"#;
    let bad = |lines: &[&str], needle: &str| {
        let e = parse_jsonl(&lines.join("\n")).expect_err("must be rejected");
        assert!(e.message.contains(needle), "{:?}: {e}", lines.last().unwrap());
        e.line
    };
    let c = |ty: &str, v: &str| format!(r#"{{"process":0,"type":"{ty}","f":"commit","value":{v},"time":2}}"#);
    let a = |ty: &str, v: &str| format!(r#"{{"process":0,"type":"{ty}","f":"assignment","value":{v},"time":2}}"#);
    // Malformed invocations (line 1).
    for (v, needle) in [
        ("null", "must be an object"),
        ("[1]", "must be an object"),
        (r#"{"generation":4,"offsets":{}}"#, "\"group\""),
        (r#"{"group":"g","offsets":{}}"#, "\"generation\""),
        (r#"{"group":"g","generation":4}"#, "\"offsets\""),
        (r#"{"group":1,"generation":4,"offsets":{}}"#, "group must be a string"),
        (r#"{"group":"g","generation":"4","offsets":{}}"#, "generation must be an integer"),
        (r#"{"group":"g","generation":4.5,"offsets":{}}"#, "generation must be an integer"),
        (r#"{"group":"g","generation":4,"offsets":[["t-0",1]]}"#, "offsets must be an object"),
        (r#"{"group":"g","generation":4,"offsets":{"t-0":"17"}}"#, "offset of \"t-0\" must be an integer"),
        (r#"{"group":"g","generation":4,"offsets":{},"member":7}"#, "member must be a string"),
        (r#"{"group":"g","generation":4,"offsets":{},"keys":["t-0"]}"#, "unknown field \"keys\""),
    ] {
        let line = format!(r#"{{"process":0,"type":"invoke","f":"commit","value":{v},"time":1}}"#);
        assert_eq!(bad(&[&line], needle), 1);
    }
    for (v, needle) in [
        ("null", "must be an object"),
        (r#"{"group":"g","generation":4}"#, "\"member\""),
        (r#"{"group":"g","generation":4,"member":"m-1","keys":["t-0"]}"#, "cannot know its keys"),
        (r#"{"group":"g","generation":4,"member":"m-1","offsets":{}}"#, "unknown field \"offsets\""),
    ] {
        let line = format!(r#"{{"process":0,"type":"invoke","f":"assignment","value":{v},"time":1}}"#);
        assert_eq!(bad(&[&line], needle), 1);
    }
    // Malformed completions (line 2).
    for (line, needle) in [
        (c("ok", "null"), "must be an object"),
        (c("ok", r#"{"group":"h","generation":4,"offsets":{"t-0":17}}"#), "differ from its invocation"),
        (c("ok", r#"{"group":"g","generation":5,"offsets":{"t-0":17}}"#), "differ from its invocation"),
        (c("ok", r#"{"group":"g","generation":4,"offsets":{"t-0":18}}"#), "differ from its invocation"),
        (c("info", r#"{"group":"g","generation":4,"offsets":{}}"#), "differ from its invocation"),
        (c("fail", r#"{"group":"g","generation":4,"member":"m","offsets":{"t-0":17}}"#), "differ from its invocation"),
    ] {
        assert_eq!(bad(&[c_inv, &line], needle), 2);
    }
    for (line, needle) in [
        (a("ok", "null"), "must be an object"),
        (a("ok", r#"{"group":"g","generation":4,"member":"m-1"}"#), "must list the keys"),
        (a("ok", r#"{"group":"g","generation":4,"member":"m-2","keys":["t-0"]}"#), "differ from its invocation"),
        (a("ok", r#"{"group":"g","generation":3,"member":"m-1","keys":["t-0"]}"#), "differ from its invocation"),
        (a("ok", r#"{"group":"h","generation":4,"member":"m-1","keys":["t-0"]}"#), "differ from its invocation"),
        (a("ok", r#"{"group":"g","generation":4,"member":"m-1","keys":"t-0"}"#), "keys must be a list"),
        (a("ok", r#"{"group":"g","generation":4,"member":"m-1","keys":[0]}"#), "keys must be strings"),
        (a("info", r#"{"group":"g","generation":4,"member":"m-1","keys":["t-0"]}"#), "learned no keys"),
        (a("fail", r#"{"group":"g","generation":4,"member":"m-9"}"#), "differ from its invocation"),
    ] {
        assert_eq!(bad(&[a_inv, &line], needle), 2);
    }
    // Group operations carry no `key`, and a completion must match its invocation's f.
    let keyed = r#"{"process":0,"type":"invoke","f":"commit","key":"t-0","value":{"group":"g","generation":4,"offsets":{}},"time":1}"#;
    assert_eq!(bad(&[keyed], "carry a key"), 1);
    assert_eq!(bad(&[c_inv, &a("ok", r#"{"group":"g","generation":4,"member":"m-1","keys":[]}"#)], "in flight"), 2);
    // The line is exact after other lines.
    let ok = r#"{"process":1,"type":"invoke","f":"poll","value":[["poll"]],"time":0}"#;
    assert_eq!(bad(&[ok, "", &c("invoke", "{}").replace("\"time\":2", "\"time\":3")], "\"group\""), 3);
}

#[test]
fn in_memory_histories_get_the_same_rules() {
    let ev = |line: usize, ty: EventType, value: Payload| Event {
        line,
        process: Process::Client(0),
        ty,
        f: F::Assignment,
        value,
        time_ns: line as u64,
        key: None,
    };
    let a = |keys: Option<Vec<u32>>| {
        Payload::Group(Some(GroupValue::Assignment { group: "g".into(), generation: 1, member: "m".into(), keys }))
    };
    let keys = vec!["t-0".to_string()];
    let good = History::from_parts(vec![ev(1, EventType::Invoke, a(None)), ev(2, EventType::Ok, a(Some(vec![0])))], keys.clone());
    assert!(good.is_ok());
    let e = History::from_parts(vec![ev(1, EventType::Invoke, a(Some(vec![0])))], keys.clone()).unwrap_err();
    assert_eq!(e.line, 1);
    let e = History::from_parts(vec![ev(1, EventType::Invoke, a(None)), ev(2, EventType::Ok, a(Some(vec![1])))], keys.clone()).unwrap_err();
    assert!(e.message.contains("key id"), "{e}");
    let e = History::from_parts(vec![ev(1, EventType::Invoke, a(None)), ev(2, EventType::Ok, Payload::Group(None))], keys).unwrap_err();
    assert_eq!(e.line, 2);
}

fn cli_history() -> String {
    let mut b = B::new();
    b.send_ok(0, "t-0", 1, 0).poll(1, &[("t-0", &[(0, 1)])]);
    assignment(&mut b, 1, "g", 1, "m-1", &["t-0"]);
    assignment(&mut b, 2, "g", 1, "m-2", &["t-0"]);
    commit(&mut b, 1, "g", 1, json!({"t-0": 1}));
    commit(&mut b, 2, "g", 2, json!({"t-0": 0}));
    b.text()
}

#[test]
fn dlog_check_reports_both_anomalies_in_text_and_json() {
    let dir = std::env::temp_dir().join(format!("dlog-check-groups-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("groups.jsonl");
    std::fs::write(&file, cli_history()).unwrap();
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_dlog-check")).arg(&file).args(args).output().unwrap();

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("INVALID (log model)"), "{text}");
    for name in [COMMIT_REGRESSION, ASSIGNMENT_CONFLICT] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(name) && l.trim_end().ends_with('1')), "{text}");
    }
    assert!(text.contains("lower offset 0"), "{text}");
    assert!(text.contains("process 2 assignment (ok, lines 7-8)"), "{text}");

    let out = run(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], json!(false));
    assert_eq!(v["model"], json!("log"));
    assert_eq!(v["anomalies"][COMMIT_REGRESSION]["count"], json!(1));
    assert_eq!(v["anomalies"][COMMIT_REGRESSION]["examples"][0]["detail"]["later_offset"], json!(0));
    assert_eq!(v["anomalies"][ASSIGNMENT_CONFLICT]["count"], json!(1));
    assert_eq!(v["anomalies"][ASSIGNMENT_CONFLICT]["examples"][0]["detail"]["members"], json!(["m-1", "m-2"]));
    assert_eq!(v["stats"]["commit_ops"], json!(2));

    let html = dir.join("groups.html");
    let out = run(&["--html", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(COMMIT_REGRESSION) && page.contains(ASSIGNMENT_CONFLICT));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn html_report_draws_group_operations_on_the_timeline() {
    let h = parse_jsonl(&cli_history()).unwrap();
    let r = checker::check(&h);
    let page = checker::html::render(&h, &r);
    let start = page.find("id=\"data\">").unwrap() + "id=\"data\">".len();
    let end = start + page[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&page[start..end].replace("<\\/", "</")).unwrap();
    let labels: Vec<&str> = data["timeline"]["ops"].as_array().unwrap().iter().map(|o| o["label"].as_str().unwrap()).collect();
    assert_eq!(labels.iter().filter(|l| l.starts_with("commit ")).count(), 2, "{labels:?}");
    assert_eq!(labels.iter().filter(|l| l.starts_with("assignment ")).count(), 2, "{labels:?}");
    // The witnesses' operations are marked.
    assert!(data["timeline"]["ops"].as_array().unwrap().iter().filter(|o| o["marked"] == json!(true)).count() >= 4);
    // The documented examples (valid and invalid) render too.
    for text in documented_examples() {
        let h = parse_jsonl(&text).unwrap();
        let _ = checker::html::render(&h, &checker::check(&h));
    }
}

/// One event of a random commit history: (process, offsets if an invoke).
type Step = (u32, Vec<(usize, i64)>);

/// Random interleavings of ok commits by a few processes: the sweep counts
/// exactly the (commit, key) pairs that a brute force over all pairs finds.
fn random_commits(steps: &[Step]) -> (String, usize) {
    const KEYS: [&str; 2] = ["t-0", "t-1"];
    let mut b = B::new();
    // process → offsets of its commit in flight and its invoke's event index
    let mut open: std::collections::BTreeMap<u32, (Value, usize)> = Default::default();
    // (invoke event, completion event, offsets) of every ok commit
    let mut done: Vec<(usize, usize, Vec<(usize, i64)>)> = Vec::new();
    let mut offsets_of: std::collections::BTreeMap<usize, Vec<(usize, i64)>> = Default::default();
    for (p, offsets) in steps {
        let at = b.lines.len();
        match open.remove(p) {
            Some((v, inv)) => {
                b.ev(json!(p), "ok", "commit", v);
                done.push((inv, at, offsets_of.remove(&inv).unwrap()));
            }
            None => {
                let map: serde_json::Map<String, Value> = offsets.iter().map(|&(k, o)| (KEYS[k].to_string(), json!(o))).collect();
                // A key named twice keeps its last offset, as in a JSON object.
                let offs: Vec<(usize, i64)> = (0..KEYS.len()).filter_map(|k| map.get(KEYS[k]).map(|o| (k, o.as_i64().unwrap()))).collect();
                let v = json!({"group": "g", "generation": 1, "offsets": map});
                b.ev(json!(p), "invoke", "commit", v.clone());
                offsets_of.insert(at, offs);
                open.insert(*p, (v, at));
            }
        }
    }
    let mut expected = 0;
    for (b_inv, _, b_offs) in &done {
        for &(k, o) in b_offs {
            let regressed = done.iter().any(|(_, a_ret, a_offs)| a_ret < b_inv && a_offs.iter().any(|&(k2, o2)| k2 == k && o2 > o));
            expected += usize::from(regressed);
        }
    }
    (b.text(), expected)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    #[test]
    fn the_sweep_agrees_with_brute_force(
        steps in proptest::collection::vec((0u32..4, proptest::collection::vec((0usize..2, 0i64..5), 0..3)), 0..24)
    ) {
        let (text, expected) = random_commits(&steps);
        let r = check_text(&text);
        let got = r.anomalies.get(COMMIT_REGRESSION).map(|e| e.count).unwrap_or(0);
        proptest::prop_assert_eq!(got, expected, "{}\n{}", text, r.render_text());
        proptest::prop_assert_eq!(r.valid == Validity::Valid, expected == 0);
    }
}
