//! `epoch` reads and the `epoch-regression` anomaly: a monotone history is
//! valid, a regression after a completed read is caught with both reads
//! named, overlapping reads and fail/info reads constrain nothing, keys are
//! independent, and mixing with register operations runs both checks.

mod common;
use std::process::Command;

use checker::{parse_jsonl, Validity};
use common::{has, lacks, B};
use serde_json::{json, Value};

const REGRESSION: &str = "epoch-regression";

/// A whole epoch read: invoke, then a completion of type `ty` with `value`.
fn epoch(b: &mut B, p: u32, key: Option<&str>, ty: &str, value: Value) {
    b.reg(p, "invoke", "epoch", key, json!(null));
    b.reg(p, ty, "epoch", key, value);
}

#[test]
fn monotone_epochs_are_valid() {
    let mut b = B::new();
    for (p, e) in [(0, 1), (1, 1), (0, 2), (2, 5), (1, 5), (0, 9)] {
        epoch(&mut b, p, Some("t-0"), "ok", json!(e));
    }
    let r = b.check();
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    assert_eq!(r.model, "register");
    lacks(&r, REGRESSION);
    assert_eq!(r.stats["epoch_ops"], json!(6));
    assert_eq!(r.stats["epoch_keys"], json!(1));
    // Linearizability did not run: there is no register operation.
    assert!(!r.stats.contains_key("register_ops"));
}

#[test]
fn regression_after_a_completed_read_is_caught_naming_both() {
    let mut b = B::new();
    epoch(&mut b, 0, Some("t-0"), "ok", json!(3));
    epoch(&mut b, 1, Some("t-0"), "ok", json!(7)); // lines 3-4
    epoch(&mut b, 2, Some("t-0"), "ok", json!(5)); // lines 5-6: went backwards
    let r = b.check();
    assert_eq!(r.valid, Validity::Invalid, "{}", r.render_text());
    assert_eq!(has(&r, REGRESSION), 1);
    assert!(!r.allowed.contains(&REGRESSION.to_string()));
    assert_eq!(r.disallowed(), vec![REGRESSION]);
    let ex = &r.anomalies[REGRESSION].examples[0];
    assert_eq!(ex.key.as_deref(), Some("t-0"));
    assert_eq!(ex.ops.len(), 2);
    assert_eq!((ex.ops[0].process, ex.ops[0].invoke_line, ex.ops[0].completion_line), (1, 3, Some(4)));
    assert_eq!((ex.ops[1].process, ex.ops[1].invoke_line, ex.ops[1].completion_line), (2, 5, Some(6)));
    assert!(ex.ops.iter().all(|o| o.f == "epoch" && o.outcome == "ok"));
    assert_eq!(ex.detail["earlier_value"], json!(7));
    assert_eq!(ex.detail["later_value"], json!(5));
    assert_eq!(ex.detail["earlier_op"], json!(1));
    assert_eq!(ex.detail["later_op"], json!(2));
    assert!(ex.text.contains("process 1's epoch read (lines 3-4) saw epoch 7"), "{}", ex.text);
    assert!(ex.text.contains("process 2's epoch read (lines 5-6)"), "{}", ex.text);
    assert!(ex.text.contains("lower epoch 5"), "{}", ex.text);
    assert!(ex.text.contains("key \"t-0\""), "{}", ex.text);
    // The text report shows it too, with the full operations.
    let text = r.render_text();
    assert!(text.starts_with("INVALID (register model)"), "{text}");
    assert!(text.contains("process 2 epoch (ok, lines 5-6): invoked null, completed 5"), "{text}");
    // And the JSON report.
    let j = r.to_json();
    assert_eq!(j["anomalies"][REGRESSION]["count"], json!(1));
    assert_eq!(j["anomalies"][REGRESSION]["examples"][0]["ops"][1]["completion"]["value"], json!(5));
}

#[test]
fn every_regressing_read_counts_once() {
    let mut b = B::new();
    epoch(&mut b, 0, None, "ok", json!(4));
    epoch(&mut b, 1, None, "ok", json!(9));
    epoch(&mut b, 2, None, "ok", json!(2));
    epoch(&mut b, 3, None, "ok", json!(8));
    epoch(&mut b, 4, None, "ok", json!(9));
    let r = b.check();
    assert_eq!(has(&r, REGRESSION), 2, "{}", r.render_text());
    let ex = &r.anomalies[REGRESSION].examples[0];
    // The witness names the read that saw the maximum before it.
    assert_eq!(ex.detail["earlier_value"], json!(9));
    assert_eq!(ex.key.as_deref(), Some(""));
    assert!(ex.text.contains("the shared key"), "{}", ex.text);
}

#[test]
fn overlapping_reads_may_see_epochs_in_either_order() {
    // b is invoked before a completes: b may have taken effect first.
    let mut b = B::new();
    b.reg(0, "invoke", "epoch", Some("t-0"), json!(null));
    b.reg(1, "invoke", "epoch", Some("t-0"), json!(null));
    b.reg(0, "ok", "epoch", Some("t-0"), json!(7));
    b.reg(1, "ok", "epoch", Some("t-0"), json!(5));
    let r = b.check();
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    lacks(&r, REGRESSION);
    // Same with the lower read nested inside the higher one.
    let mut b = B::new();
    b.reg(0, "invoke", "epoch", Some("t-0"), json!(null));
    b.reg(1, "invoke", "epoch", Some("t-0"), json!(null));
    b.reg(1, "ok", "epoch", Some("t-0"), json!(5));
    b.reg(0, "ok", "epoch", Some("t-0"), json!(7));
    assert_eq!(b.check().valid, Validity::Valid);
}

#[test]
fn events_at_one_time_follow_the_file_order() {
    // All four events carry the same time: the file order says the first
    // read completed before the second was invoked.
    let t = [
        r#"{"process":0,"type":"invoke","f":"epoch","key":"k","value":null,"time":5}"#,
        r#"{"process":0,"type":"ok","f":"epoch","key":"k","value":2,"time":5}"#,
        r#"{"process":1,"type":"invoke","f":"epoch","key":"k","value":null,"time":5}"#,
        r#"{"process":1,"type":"ok","f":"epoch","key":"k","value":1,"time":5}"#,
    ]
    .join("\n");
    let r = checker::check(&parse_jsonl(&t).unwrap());
    assert_eq!(has(&r, REGRESSION), 1);
}

#[test]
fn fail_and_info_reads_constrain_nothing() {
    for ty in ["fail", "info"] {
        for value in [json!(null), json!(1), json!(100)] {
            let mut b = B::new();
            epoch(&mut b, 0, Some("t-0"), "ok", json!(5));
            epoch(&mut b, 1, Some("t-0"), ty, value.clone()); // lower or higher: ignored
            epoch(&mut b, 2, Some("t-0"), "ok", json!(5));
            epoch(&mut b, 3, Some("t-0"), ty, value.clone());
            let r = b.check();
            assert_eq!(r.valid, Validity::Valid, "{ty} {value}: {}", r.render_text());
            lacks(&r, REGRESSION);
        }
    }
    // An epoch read that never completes constrains nothing either.
    let mut b = B::new();
    epoch(&mut b, 0, Some("t-0"), "ok", json!(5));
    b.reg(1, "invoke", "epoch", Some("t-0"), json!(null));
    assert_eq!(b.check().valid, Validity::Valid);
}

#[test]
fn keys_are_independent() {
    let mut b = B::new();
    epoch(&mut b, 0, Some("t-0"), "ok", json!(9));
    epoch(&mut b, 1, Some("t-1"), "ok", json!(2));
    epoch(&mut b, 2, None, "ok", json!(1));
    epoch(&mut b, 0, Some("t-1"), "ok", json!(3));
    epoch(&mut b, 1, Some("t-0"), "ok", json!(9));
    let r = b.check();
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    assert_eq!(r.stats["epoch_keys"], json!(3));
    // A regression on one key is reported on that key only.
    epoch(&mut b, 2, Some("t-1"), "ok", json!(2));
    let r = b.check();
    assert_eq!(has(&r, REGRESSION), 1);
    assert_eq!(r.anomalies[REGRESSION].examples[0].key.as_deref(), Some("t-1"));
}

#[test]
fn mixed_with_register_operations_runs_both_checks() {
    // Linearizable registers and monotone epochs: valid.
    let mut b = B::new();
    b.reg(0, "invoke", "write", Some("x"), json!(1)).reg(0, "ok", "write", Some("x"), json!(1));
    epoch(&mut b, 1, Some("x"), "ok", json!(4));
    b.reg(2, "invoke", "cas", Some("x"), json!([1, 2])).reg(2, "ok", "cas", Some("x"), json!([1, 2]));
    epoch(&mut b, 1, Some("x"), "ok", json!(4));
    b.reg(0, "invoke", "read", Some("x"), json!(null)).reg(0, "ok", "read", Some("x"), json!(2));
    let r = b.check();
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    assert_eq!(r.model, "register");
    assert_eq!(r.stats["register_ops"], json!(3));
    assert_eq!(r.stats["epoch_ops"], json!(2));

    // A stale read is still nonlinearizable with epoch reads about; the
    // epochs (monotone) add nothing.
    let b2 = &mut b;
    b2.reg(1, "invoke", "read", Some("x"), json!(null)).reg(1, "ok", "read", Some("x"), json!(1));
    let r = b2.check();
    assert_eq!(has(&r, "nonlinearizable"), 1);
    lacks(&r, REGRESSION);
    // Epoch reads are not register reads: they are not in the search.
    assert_eq!(r.stats["register_ops"], json!(4));

    // Both anomalies at once.
    epoch(b2, 3, Some("x"), "ok", json!(3));
    let r = b2.check();
    assert_eq!(r.valid, Validity::Invalid);
    assert_eq!(has(&r, "nonlinearizable"), 1);
    assert_eq!(has(&r, REGRESSION), 1);
}

#[test]
fn mixed_with_log_operations_gets_log_and_register_model() {
    let mut b = B::new();
    b.send_ok(0, "t-0", 1, 0).poll(1, &[("t-0", &[(0, 1)])]);
    epoch(&mut b, 2, Some("t-0"), "ok", json!(2));
    epoch(&mut b, 2, Some("t-0"), "ok", json!(1));
    let r = b.check();
    assert_eq!(r.model, "log+register");
    assert_eq!(has(&r, REGRESSION), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn parsing_and_round_trip() {
    let t = [
        r#"{"process":0,"type":"invoke","f":"epoch","key":"t-0","value":null,"time":1}"#,
        r#"{"process":0,"type":"ok","f":"epoch","key":"t-0","value":7,"time":2}"#,
        r#"{"process":1,"type":"invoke","f":"epoch","time":3}"#,
        r#"{"process":1,"type":"info","f":"epoch","value":null,"time":4}"#,
    ]
    .join("\n");
    let h = parse_jsonl(&t).unwrap();
    assert_eq!(h.ops.len(), 2);
    let back: Vec<Value> = h.events.iter().map(|e| h.event_json(e)).collect();
    assert_eq!(back[0], json!({"process":0,"type":"invoke","f":"epoch","key":"t-0","value":null,"time":1}));
    assert_eq!(back[1], json!({"process":0,"type":"ok","f":"epoch","key":"t-0","value":7,"time":2}));
    assert_eq!(back[3], json!({"process":1,"type":"info","f":"epoch","value":null,"time":4}));

    let bad = |lines: &[&str]| parse_jsonl(&lines.join("\n")).expect_err("must be rejected").line;
    let inv = r#"{"process":0,"type":"invoke","f":"epoch","key":"t-0","value":null,"time":1}"#;
    // An ok epoch read must carry an integer.
    assert_eq!(bad(&[inv, r#"{"process":0,"type":"ok","f":"epoch","key":"t-0","value":null,"time":2}"#]), 2);
    assert_eq!(bad(&[inv, r#"{"process":0,"type":"ok","f":"epoch","key":"t-0","value":"7","time":2}"#]), 2);
    assert_eq!(bad(&[inv, r#"{"process":0,"type":"ok","f":"epoch","key":"t-0","value":1.5,"time":2}"#]), 2);
    // An invocation cannot carry a result.
    assert_eq!(bad(&[r#"{"process":0,"type":"invoke","f":"epoch","value":3,"time":1}"#]), 1);
    // The key must be a string; a completion must match its invocation's f.
    assert_eq!(bad(&[r#"{"process":0,"type":"invoke","f":"epoch","key":1,"value":null,"time":1}"#]), 1);
    assert_eq!(bad(&[inv, r#"{"process":0,"type":"ok","f":"read","key":"t-0","value":7,"time":2}"#]), 2);
    // Unknown operations are still unknown.
    let e = parse_jsonl(r#"{"process":0,"type":"invoke","f":"epochs","value":null,"time":1}"#).unwrap_err();
    assert!(e.message.contains("unknown operation"), "{e}");
}

/// One ok read for the brute force: (invoke line, completion line, value).
type Iv = (usize, usize, i64);

/// Is there an order of the reads, respecting real time, in which the values
/// never decrease? (Exhaustive over permutations: small inputs only.)
fn linearizable_by_brute_force(reads: &[Iv]) -> bool {
    fn go(reads: &[Iv], used: &mut Vec<bool>, last: i64, left: usize) -> bool {
        if left == 0 {
            return true;
        }
        for i in 0..reads.len() {
            if used[i] || reads[i].2 < last {
                continue;
            }
            // Every read completed before i was invoked must already be placed.
            if (0..reads.len()).any(|j| !used[j] && j != i && reads[j].1 < reads[i].0) {
                continue;
            }
            used[i] = true;
            if go(reads, used, reads[i].2, left - 1) {
                return true;
            }
            used[i] = false;
        }
        false
    }
    go(reads, &mut vec![false; reads.len()], i64::MIN, reads.len())
}

#[test]
fn agrees_with_brute_force_on_small_random_histories() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut verdicts = [0usize; 2];
    for _ in 0..2000 {
        let mut b = B::new();
        let keys = ["a", "b"];
        // process → (key, invoke line) of its read in flight
        let mut open: Vec<Option<(usize, usize)>> = vec![None; 4];
        // per key: ok reads, and reads that regressed (brute-force count)
        let mut done: [Vec<Iv>; 2] = [Vec::new(), Vec::new()];
        let mut line = 0;
        for _ in 0..14 {
            let p = rnd(4) as usize;
            line += 1;
            match open[p].take() {
                None => {
                    let k = rnd(2) as usize;
                    b.reg(p as u32, "invoke", "epoch", Some(keys[k]), json!(null));
                    open[p] = Some((k, line));
                }
                Some((k, inv)) => {
                    let v = rnd(4) as i64;
                    let ty = ["ok", "ok", "ok", "fail", "info"][rnd(5) as usize];
                    b.reg(p as u32, ty, "epoch", Some(keys[k]), json!(v));
                    if ty == "ok" {
                        done[k].push((inv, line, v));
                    }
                }
            }
        }
        let r = b.check();
        let expected: usize = done
            .iter()
            .map(|rs| rs.iter().filter(|b| rs.iter().any(|a| a.1 < b.0 && a.2 > b.2)).count())
            .sum();
        let count = r.anomalies.get(REGRESSION).map_or(0, |e| e.count);
        assert_eq!(count, expected, "{}", b.text());
        let linearizable = done.iter().all(|rs| linearizable_by_brute_force(rs));
        assert_eq!(r.valid == Validity::Valid, linearizable, "{}\n{}", b.text(), r.render_text());
        verdicts[usize::from(linearizable)] += 1;
    }
    // Both verdicts were exercised.
    assert!(verdicts.iter().all(|&n| n > 200), "{verdicts:?}");
}

#[test]
fn html_report_shows_the_regression() {
    let mut b = B::new();
    epoch(&mut b, 0, Some("t-0"), "ok", json!(7));
    epoch(&mut b, 1, Some("t-0"), "ok", json!(5));
    let h = b.history();
    let r = checker::check(&h);
    let page = checker::html::render(&h, &r);
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains(REGRESSION));
}

#[test]
fn a_million_ops_check_quickly() {
    use checker::history::{Event, EventType, Payload, Process, F};
    // Many processes over a few keys, epochs rising over time with
    // overlapping reads; one regression at the end. Built in memory: parsing
    // two million lines in a debug build would dominate the test.
    let ev = |line: usize, p: u32, ty: EventType, key: u32, value: Option<i64>| Event {
        line,
        process: Process::Client(p),
        ty,
        f: F::Epoch,
        value: Payload::Epoch(value),
        time_ns: line as u64,
        key: Some(key),
    };
    let procs = 64u32;
    let rounds = 1_000_000 / procs;
    let mut events = Vec::with_capacity(2 * (rounds * procs) as usize + 2);
    for i in 0..rounds {
        for p in 0..procs {
            events.push(ev(events.len() + 1, p, EventType::Invoke, p % 4, None));
        }
        for p in 0..procs {
            let e = i / 100 + u32::from(p % 7 == 0 && i % 100 == 99);
            events.push(ev(events.len() + 1, p, EventType::Ok, p % 4, Some(i64::from(e))));
        }
    }
    events.push(ev(events.len() + 1, 0, EventType::Invoke, 0, None));
    events.push(ev(events.len() + 1, 0, EventType::Ok, 0, Some(0)));
    let keys = (0..4).map(|k| format!("t-{k}")).collect();
    let h = checker::History::from_parts(events, keys).unwrap();
    // Wall-clock timing in a test of the checker, not simulated code.
    #[allow(clippy::disallowed_methods)]
    let start = std::time::Instant::now();
    let r = checker::check(&h);
    let took = start.elapsed();
    assert_eq!(has(&r, REGRESSION), 1, "{}", r.render_text());
    assert_eq!(r.stats["epoch_ops"], json!(rounds * procs + 1));
    assert!(took.as_secs() < 10, "took {took:?}");
    eprintln!("checked {} epoch reads in {took:?}", rounds * procs + 1);
}

#[test]
fn cli_exits_1_on_a_regression() {
    let mut b = B::new();
    epoch(&mut b, 0, Some("t-0"), "ok", json!(7));
    epoch(&mut b, 1, Some("t-0"), "ok", json!(5));
    let dir = std::env::temp_dir().join(format!("dlog-check-epoch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("regression.jsonl");
    std::fs::write(&p, b.text()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dlog-check"))
        .args([p.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], json!(false));
    assert_eq!(v["model"], json!("register"));
    assert_eq!(v["anomalies"][REGRESSION]["count"], json!(1));
}
