//! Register/kv linearizability: cas failure semantics, info operations, keys
//! checked independently, the witness, and the time budget.

mod common;
use std::time::Duration;

use checker::{check_with, Options, Validity};
use common::{has, lacks, B};
use serde_json::{json, Value};

fn op(b: &mut B, p: u32, f: &str, key: Option<&str>, inv: Value, ty: &str, done: Value) {
    b.reg(p, "invoke", f, key, inv);
    b.reg(p, ty, f, key, done);
}

#[test]
fn sequential_write_then_read_is_linearizable() {
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(1), "ok", json!(1));
    op(&mut b, 1, "read", None, json!(null), "ok", json!(1));
    let r = b.check();
    assert_eq!(r.model, "register");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn stale_read_is_nonlinearizable_with_witness() {
    let mut b = B::new();
    op(&mut b, 0, "write", Some("x"), json!(1), "ok", json!(1));
    op(&mut b, 0, "write", Some("x"), json!(2), "ok", json!(2));
    op(&mut b, 1, "read", Some("x"), json!(null), "ok", json!(1));
    let r = b.check();
    assert_eq!(has(&r, "nonlinearizable"), 1);
    assert_eq!(r.valid, Validity::Invalid);
    let ex = &r.anomalies["nonlinearizable"].examples[0];
    assert_eq!(ex.key.as_deref(), Some("x"));
    assert_eq!(ex.detail["linearized"].as_array().unwrap().len(), 2, "{}", ex.text);
    assert_eq!(ex.detail["stuck"], json!(2));
    assert!(ex.text.contains("read of 1"), "{}", ex.text);
}

#[test]
fn concurrent_read_may_see_old_or_new() {
    for seen in [json!(null), json!(1)] {
        let mut b = B::new();
        b.reg(0, "invoke", "write", None, json!(1));
        b.reg(1, "invoke", "read", None, json!(null));
        b.reg(1, "ok", "read", None, seen);
        b.reg(0, "ok", "write", None, json!(1));
        assert_eq!(b.check().valid, Validity::Valid);
    }
}

#[test]
fn read_of_empty_key_is_null() {
    let mut b = B::new();
    op(&mut b, 1, "read", None, json!(null), "ok", json!(null));
    assert_eq!(b.check().valid, Validity::Valid);
    let mut b = B::new();
    op(&mut b, 1, "read", None, json!(null), "ok", json!(0));
    assert_eq!(b.check().valid, Validity::Invalid);
}

#[test]
fn failed_cas_means_the_value_was_not_expected() {
    // The value is certainly 0, so a cas [0, 1] cannot fail.
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(0), "ok", json!(0));
    op(&mut b, 1, "cas", None, json!([0, 1]), "fail", json!([0, 1]));
    assert_eq!(has(&b.check(), "nonlinearizable"), 1);
    // Near miss: the value is 2, so it fails rightly and changes nothing.
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(2), "ok", json!(2));
    op(&mut b, 1, "cas", None, json!([0, 1]), "fail", json!([0, 1]));
    op(&mut b, 1, "read", None, json!(null), "ok", json!(2));
    assert_eq!(b.check().valid, Validity::Valid);
}

#[test]
fn ok_cas_swaps() {
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(0), "ok", json!(0));
    op(&mut b, 1, "cas", None, json!([0, 1]), "ok", json!([0, 1]));
    op(&mut b, 1, "read", None, json!(null), "ok", json!(1));
    assert_eq!(b.check().valid, Validity::Valid);
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(3), "ok", json!(3));
    op(&mut b, 1, "cas", None, json!([0, 1]), "ok", json!([0, 1]));
    assert_eq!(b.check().valid, Validity::Invalid);
}

#[test]
fn failed_write_has_no_effect() {
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(5), "fail", json!(5));
    op(&mut b, 1, "read", None, json!(null), "ok", json!(5));
    assert_eq!(b.check().valid, Validity::Invalid);
}

#[test]
fn info_write_may_take_effect_later_or_never() {
    // It took effect after its invocation, long after: fine.
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(5), "info", json!(5));
    op(&mut b, 1, "read", None, json!(null), "ok", json!(null));
    op(&mut b, 1, "read", None, json!(null), "ok", json!(5));
    assert_eq!(b.check().valid, Validity::Valid);
    // Or never: fine.
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(5), "info", json!(5));
    op(&mut b, 1, "read", None, json!(null), "ok", json!(null));
    assert_eq!(b.check().valid, Validity::Valid);
    // A write with no completion at all counts as info.
    let mut b = B::new();
    b.reg(0, "invoke", "write", None, json!(5));
    op(&mut b, 1, "read", None, json!(null), "ok", json!(5));
    assert_eq!(b.check().valid, Validity::Valid);
}

#[test]
fn info_write_cannot_take_effect_before_its_invocation() {
    let mut b = B::new();
    op(&mut b, 1, "read", None, json!(null), "ok", json!(5));
    op(&mut b, 0, "write", None, json!(5), "info", json!(5));
    assert_eq!(has(&b.check(), "nonlinearizable"), 1);
}

#[test]
fn info_read_constrains_nothing() {
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(1), "ok", json!(1));
    op(&mut b, 1, "read", None, json!(null), "info", json!(77));
    assert_eq!(b.check().valid, Validity::Valid);
}

#[test]
fn keys_are_checked_independently() {
    // Merged into one register this would be a stale read of 1 after 2.
    let mut b = B::new();
    op(&mut b, 0, "write", Some("a"), json!(1), "ok", json!(1));
    op(&mut b, 0, "write", Some("b"), json!(2), "ok", json!(2));
    op(&mut b, 1, "read", Some("a"), json!(null), "ok", json!(1));
    assert_eq!(b.check().valid, Validity::Valid);
    // A bad key is reported alone.
    op(&mut b, 1, "read", Some("b"), json!(null), "ok", json!(9));
    let r = b.check();
    assert_eq!(has(&r, "nonlinearizable"), 1);
    assert_eq!(r.anomalies["nonlinearizable"].examples[0].key.as_deref(), Some("b"));
}

#[test]
fn append_concatenates_strings() {
    let mut b = B::new();
    op(&mut b, 0, "append", Some("s"), json!("x"), "ok", json!("x"));
    op(&mut b, 1, "append", Some("s"), json!("y"), "ok", json!("y"));
    op(&mut b, 2, "read", Some("s"), json!(null), "ok", json!("xy"));
    assert_eq!(b.check().valid, Validity::Valid);
    let mut b = B::new();
    op(&mut b, 0, "append", Some("s"), json!("x"), "ok", json!("x"));
    op(&mut b, 1, "append", Some("s"), json!("y"), "ok", json!("y"));
    op(&mut b, 2, "read", Some("s"), json!(null), "ok", json!("yx"));
    assert_eq!(b.check().valid, Validity::Invalid);
    // An empty key reads as null or "".
    let mut b = B::new();
    op(&mut b, 2, "read", Some("s"), json!(null), "ok", json!(""));
    op(&mut b, 0, "append", Some("s"), json!("x"), "ok", json!("x"));
    op(&mut b, 2, "read", Some("s"), json!(null), "ok", json!("x"));
    assert_eq!(b.check().valid, Validity::Valid);
}

#[test]
fn generated_histories_are_linearizable() {
    for (procs, seed) in [(3, 1), (10, 2), (50, 3)] {
        let text = checker::gen::register_history(&checker::gen::RegisterGen {
            ops: 400,
            processes: procs,
            info_fraction: 0.1,
            keys: 3,
            values: 3,
            seed,
        });
        let r = checker::check(&checker::parse_jsonl(&text).unwrap());
        assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
        lacks(&r, "nonlinearizable");
    }
}

#[test]
fn a_corrupted_generated_history_is_caught() {
    let text = checker::gen::register_history(&checker::gen::RegisterGen { ops: 300, info_fraction: 0.0, ..Default::default() });
    // Make the last ok read return a value no one wrote.
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let i = lines.iter().rposition(|l| l.contains("\"type\":\"ok\",\"f\":\"read\"")).unwrap();
    let mut v: Value = serde_json::from_str(&lines[i]).unwrap();
    v["value"] = json!(999);
    lines[i] = v.to_string();
    let r = checker::check(&checker::parse_jsonl(&lines.join("\n")).unwrap());
    assert_eq!(has(&r, "nonlinearizable"), 1);
}

#[test]
fn exceeding_the_time_budget_is_unknown() {
    let text = checker::gen::register_history(&checker::gen::RegisterGen { ops: 20_000, processes: 20, ..Default::default() });
    let h = checker::parse_jsonl(&text).unwrap();
    let r = check_with(&h, &Options { time_budget: Duration::ZERO });
    assert_eq!(r.valid, Validity::Unknown, "{}", r.render_text());
    assert!(!r.unknown_reasons.is_empty());
}

#[test]
fn read_of_a_value_only_a_failed_write_wrote_is_caught_fast() {
    // A long, valid history with many pending info ops, then a read of a value
    // whose only write failed: refuted without exploring the whole prefix.
    let text = checker::gen::register_history(&checker::gen::RegisterGen { ops: 5_000, processes: 10, ..Default::default() });
    let mut b = B::new();
    b.lines = text.lines().map(String::from).collect();
    let last_time: u64 = 1 << 40;
    b.lines.push(json!({"process": 900, "type": "invoke", "f": "write", "key": "r0", "value": 77, "time": last_time}).to_string());
    b.lines.push(json!({"process": 900, "type": "fail", "f": "write", "key": "r0", "value": 77, "time": last_time}).to_string());
    b.lines.push(json!({"process": 901, "type": "invoke", "f": "read", "key": "r0", "value": null, "time": last_time}).to_string());
    b.lines.push(json!({"process": 901, "type": "ok", "f": "read", "key": "r0", "value": 77, "time": last_time}).to_string());
    let h = b.history();
    let r = check_with(&h, &Options { time_budget: Duration::from_secs(60) });
    assert_eq!(r.valid, Validity::Invalid, "{}", r.render_text());
    let ex = &r.anomalies["nonlinearizable"].examples[0];
    assert!(ex.text.contains("read of 77"), "{}", ex.text);
}

#[test]
fn stale_read_after_a_completed_overwrite() {
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(1), "ok", json!(1));
    op(&mut b, 1, "cas", None, json!([1, 2]), "ok", json!([1, 2]));
    op(&mut b, 2, "read", None, json!(null), "ok", json!(1));
    let r = b.check();
    assert!(r.anomalies["nonlinearizable"].examples[0].text.contains("read of 1"));
    // Near miss: the overwrite is concurrent with the read.
    let mut b = B::new();
    op(&mut b, 0, "write", None, json!(1), "ok", json!(1));
    b.reg(1, "invoke", "cas", None, json!([1, 2]));
    op(&mut b, 2, "read", None, json!(null), "ok", json!(1));
    b.reg(1, "ok", "cas", None, json!([1, 2]));
    assert_eq!(b.check().valid, Validity::Valid);
}
