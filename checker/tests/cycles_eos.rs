//! Dependency cycles (G0, G1c and their process/realtime variants) and the
//! exactly-once extras, each with a trigger and a near miss.

mod common;
use checker::Validity;
use common::{has, lacks, B};
use serde_json::json;

fn two_key_sends(q_k1: i64, q_k2: i64) -> B {
    let mut b = B::new();
    // P and Q run concurrently: no real-time order between them.
    b.invoke_send(0, &[("k1", 1), ("k2", 2)]);
    b.invoke_send(1, &[("k1", 3), ("k2", 4)]);
    b.ev(json!(0), "ok", "send", json!([["send", "k1", [0, 1]], ["send", "k2", [1, 2]]]));
    b.ev(json!(1), "ok", "send", json!([["send", "k1", [q_k1, 3]], ["send", "k2", [q_k2, 4]]]));
    let (mut r1, mut r2) = (vec![(0, 1), (q_k1, 3)], vec![(1, 2), (q_k2, 4)]);
    r1.sort();
    r2.sort();
    b.poll(2, &[("k1", &r1), ("k2", &r2)]);
    b
}

#[test]
fn g0_write_cycle_is_reported_and_allowed() {
    let r = two_key_sends(1, 0).check();
    assert_eq!(has(&r, "G0"), 1);
    let ex = &r.anomalies["G0"].examples[0];
    assert_eq!(ex.ops.len(), 2);
    assert!(ex.text.contains("ww on k1"), "{}", ex.text);
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn g0_near_miss_same_order_on_both_keys() {
    let r = two_key_sends(1, 2).check();
    lacks(&r, "G0");
    assert!(r.anomalies.is_empty(), "{}", r.render_text());
}

fn g1c(t1_reads_back: bool) -> B {
    let mut b = B::new();
    b.ev(json!(0), "invoke", "txn", json!([["send", "k1", 1], ["poll"]]));
    b.ev(json!(1), "invoke", "txn", json!([["send", "k2", 2], ["poll"]]));
    let t1_reads = if t1_reads_back { json!({"k2": [[0, 2]]}) } else { json!({}) };
    b.ev(json!(0), "ok", "txn", json!([["send", "k1", [0, 1]], ["poll", t1_reads]]));
    b.ev(json!(1), "ok", "txn", json!([["send", "k2", [0, 2]], ["poll", {"k1": [[0, 1]]}]]));
    b.poll(3, &[("k1", &[(0, 1)]), ("k2", &[(0, 2)])]);
    b
}

#[test]
fn g1c_read_cycle_is_invalid() {
    let r = g1c(true).check();
    assert_eq!(has(&r, "G1c"), 1);
    assert!(r.anomalies["G1c"].examples[0].text.contains("wr on k"));
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn g1c_near_miss_one_way_reads() {
    let r = g1c(false).check();
    lacks(&r, "G1c");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

/// W (process 1) writes x to k1 at `x_offset`; process 0 reads x, then sends y to k1 at offset 0.
fn g1c_process(x_offset: i64) -> B {
    let mut b = B::new();
    b.send_ok(1, "k1", 10, x_offset);
    b.poll(0, &[("k1", &[(x_offset, 10)])]);
    b.send_ok(0, "k1", 11, 0);
    let mut all = vec![(x_offset, 10), (0, 11)];
    all.sort();
    b.poll(2, &[("k1", &all)]);
    b
}

#[test]
fn g1c_process_and_realtime() {
    let r = g1c_process(1).check();
    assert_eq!(has(&r, "G1c-process"), 1);
    assert_eq!(has(&r, "G1c-realtime"), 1);
    lacks(&r, "G1c");
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn g1c_process_near_miss_later_offset() {
    let mut b = B::new();
    b.send_ok(1, "k1", 10, 0);
    b.poll(0, &[("k1", &[(0, 10)])]);
    b.send_ok(0, "k1", 11, 1);
    b.poll(2, &[("k1", &[(0, 10), (1, 11)])]);
    let r = b.check();
    assert!(r.anomalies.is_empty(), "{}", r.render_text());
}

#[test]
fn g0_process_is_allowed() {
    // One process's second send lands before its first.
    let r = B::new()
        .send_ok(0, "k1", 1, 1)
        .send_ok(0, "k1", 2, 0)
        .poll(2, &[("k1", &[(0, 2), (1, 1)])])
        .check();
    assert_eq!(has(&r, "G0-process"), 1);
    assert!(r.allowed.contains(&"G0-process".to_string()));
    // nonmonotonic-send is what makes this invalid
    assert_eq!(r.disallowed(), vec!["nonmonotonic-send"]);
}

#[test]
fn g0_realtime_between_processes() {
    let r = B::new()
        .send_ok(0, "k1", 1, 1)
        .send_ok(1, "k1", 2, 0)
        .poll(2, &[("k1", &[(0, 2), (1, 1)])])
        .check();
    assert_eq!(has(&r, "G0-realtime"), 1);
    let ex = &r.anomalies["G0-realtime"].examples[0];
    assert!(ex.text.contains("real time"), "{}", ex.text);
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn g0_realtime_near_miss_concurrent_sends() {
    let mut b = B::new();
    b.invoke_send(0, &[("k1", 1)]);
    b.invoke_send(1, &[("k1", 2)]);
    b.ev(json!(0), "ok", "send", json!([["send", "k1", [1, 1]]]));
    b.ev(json!(1), "ok", "send", json!([["send", "k1", [0, 2]]]));
    b.poll(2, &[("k1", &[(0, 2), (1, 1)])]);
    let r = b.check();
    assert!(r.anomalies.is_empty(), "{}", r.render_text());
}

fn transform(p: u32, ty: &str, input: i64, output: i64, out_offset: i64) -> (serde_json::Value, serde_json::Value, u32, String) {
    (
        json!([["poll"], ["send", "out", output]]),
        json!([["poll", {"in": [[0, input]]}], ["send", "out", [out_offset, output]]]),
        p,
        ty.to_string(),
    )
}

#[test]
fn duplicate_consume() {
    let mut b = B::new();
    b.send_ok(9, "in", 1, 0);
    for (inv, done, p, ty) in [transform(0, "ok", 1, 100, 0), transform(1, "ok", 1, 101, 1)] {
        b.txn(p, &ty, inv, done);
    }
    b.poll(2, &[("out", &[(0, 100), (1, 101)])]);
    let r = b.check();
    assert_eq!(has(&r, "duplicate-consume"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn duplicate_consume_near_miss_aborted_retry() {
    let mut b = B::new();
    b.send_ok(9, "in", 1, 0);
    let (inv, done, _, _) = transform(0, "fail", 1, 100, 0);
    b.txn(0, "fail", inv, done);
    let (inv, done, _, _) = transform(1, "ok", 1, 101, 1);
    b.txn(1, "ok", inv, done);
    b.poll(2, &[("out", &[(1, 101)])]);
    let r = b.check();
    lacks(&r, "duplicate-consume");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn torn_txn() {
    let r = B::new()
        .txn(0, "ok", json!([["send", "a", 1], ["send", "b", 2]]), json!([["send", "a", [0, 1]], ["send", "b", [0, 2]]]))
        .poll(2, &[("a", &[(0, 1)])])
        .check();
    assert_eq!(has(&r, "torn-txn"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn torn_txn_near_miss_info_txn_never_read() {
    let r = B::new()
        .txn(0, "info", json!([["send", "a", 1], ["send", "b", 2]]), json!(null))
        .poll(2, &[("a", &[])])
        .check();
    lacks(&r, "torn-txn");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}
