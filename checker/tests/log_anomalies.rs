//! For every log anomaly: a minimal history that must trigger it, and a near
//! miss that must not.

mod common;
use checker::Validity;
use common::{has, lacks, B};
use serde_json::json;

#[test]
fn clean_history_is_valid() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 2, 1)
        .poll(1, &[("t-0", &[(0, 1), (1, 2)])])
        .check();
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
    assert!(r.anomalies.is_empty());
}

#[test]
fn lost_write_names_value_and_partition() {
    let r = B::new()
        .send_ok(0, "t-0", 17, 3)
        .send_ok(2, "t-0", 18, 9)
        .poll(4, &[("t-0", &[(9, 18)])])
        .check();
    assert_eq!(has(&r, "lost-write"), 1);
    let text = &r.anomalies["lost-write"].examples[0].text;
    assert!(text.contains("value 17") && text.contains("t-0") && text.contains("offset 3"), "{text}");
    assert!(text.contains("process 4 read up to offset 9"), "{text}");
    assert_eq!(r.valid, Validity::Invalid);
    lacks(&r, "unseen");
}

#[test]
fn lost_write_near_miss_value_above_highest_read_is_unseen() {
    let r = B::new()
        .send_ok(0, "t-0", 17, 3)
        .send_ok(2, "t-0", 18, 9)
        .poll(4, &[("t-0", &[(3, 17)])])
        .check();
    lacks(&r, "lost-write");
    assert_eq!(has(&r, "unseen"), 1);
    assert!(r.anomalies["unseen"].examples[0].text.contains("value 18"));
}

#[test]
fn lost_write_near_miss_info_send_never_read_is_fine() {
    let r = B::new()
        .send_not_ok(0, "t-0", 17, "info")
        .send_ok(2, "t-0", 18, 9)
        .poll(4, &[("t-0", &[(9, 18)])])
        .check();
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn lost_write_near_miss_failed_send_never_read_is_fine() {
    let r = B::new()
        .send_not_ok(0, "t-0", 17, "fail")
        .send_ok(2, "t-0", 18, 9)
        .poll(4, &[("t-0", &[(9, 18)])])
        .check();
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn lost_write_read_only_by_info_poll_still_counts() {
    // An info poll places 17 in the version order but does not count as seeing it.
    let r = B::new()
        .send_ok(0, "t-0", 17, 3)
        .send_ok(2, "t-0", 18, 9)
        .poll_ty(5, "info", &[("t-0", &[(3, 17)])])
        .poll(4, &[("t-0", &[(9, 18)])])
        .check();
    assert_eq!(has(&r, "lost-write"), 1);
}

#[test]
fn unseen_ok_send_never_read() {
    let r = B::new().send_ok(0, "t-0", 1, 0).check();
    assert_eq!(has(&r, "unseen"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn inconsistent_offsets() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(1, "t-0", 2, 0)
        .poll(2, &[("t-0", &[(0, 1)])])
        .poll(3, &[("t-0", &[(0, 2)])])
        .check();
    assert_eq!(has(&r, "inconsistent-offsets"), 1);
    let ex = &r.anomalies["inconsistent-offsets"].examples[0];
    assert!(ex.text.contains("offset 0 of t-0"), "{}", ex.text);
}

#[test]
fn inconsistent_offsets_near_miss_same_value_twice() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .poll(2, &[("t-0", &[(0, 1)])])
        .poll(3, &[("t-0", &[(0, 1)])])
        .check();
    lacks(&r, "inconsistent-offsets");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn duplicate_value_at_two_offsets() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 2, 1)
        .poll(2, &[("t-0", &[(0, 1), (1, 2), (2, 1)])])
        .check();
    assert_eq!(has(&r, "duplicate"), 1);
}

#[test]
fn duplicate_near_miss_same_offset_read_again() {
    // Re-reading one record (after a reassignment) is not a duplicate.
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .assign(2, &["t-0"])
        .poll(2, &[("t-0", &[(0, 1)])])
        .assign(2, &[])
        .assign(2, &["t-0"])
        .poll(2, &[("t-0", &[(0, 1)])])
        .check();
    lacks(&r, "duplicate");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn unseen_near_miss_read_by_a_transaction() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .txn(1, "ok", json!([["poll"]]), json!([["poll", {"t-0": [[0, 1]]}]]))
        .check();
    lacks(&r, "unseen");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn garbage_read() {
    let r = B::new().poll(2, &[("t-0", &[(0, 99)])]).check();
    assert_eq!(has(&r, "garbage-read"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn garbage_read_near_miss_info_send_read() {
    let r = B::new()
        .send_not_ok(0, "t-0", 99, "info")
        .poll(2, &[("t-0", &[(0, 99)])])
        .check();
    lacks(&r, "garbage-read");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn nonmonotonic_poll() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 2, 1)
        .poll(2, &[("t-0", &[(0, 1), (1, 2)])])
        .poll(2, &[("t-0", &[(1, 2)])])
        .check();
    assert_eq!(has(&r, "nonmonotonic-poll"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn nonmonotonic_poll_near_miss_reassignment_dropped_key() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 2, 1)
        .assign(2, &["t-0"])
        .poll(2, &[("t-0", &[(0, 1), (1, 2)])])
        .assign(2, &["t-1"])
        .assign(2, &["t-0"])
        .poll(2, &[("t-0", &[(1, 2)])])
        .check();
    lacks(&r, "nonmonotonic-poll");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn nonmonotonic_poll_reassignment_keeping_key_still_counts() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 2, 1)
        .poll(2, &[("t-0", &[(0, 1), (1, 2)])])
        .assign(2, &["t-0", "t-1"])
        .poll(2, &[("t-0", &[(0, 1)])])
        .check();
    assert_eq!(has(&r, "nonmonotonic-poll"), 1);
}

#[test]
fn poll_skip() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 2, 1)
        .send_ok(0, "t-0", 3, 2)
        .poll(1, &[("t-0", &[(0, 1), (1, 2), (2, 3)])])
        .poll(2, &[("t-0", &[(0, 1)])])
        .poll(2, &[("t-0", &[(2, 3)])])
        .check();
    assert_eq!(has(&r, "poll-skip"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn poll_skip_near_miss_offset_gap_from_marker() {
    // Offset 1 holds a transaction marker: no one ever sees a value there.
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 3, 2)
        .poll(2, &[("t-0", &[(0, 1)])])
        .poll(2, &[("t-0", &[(2, 3)])])
        .check();
    lacks(&r, "poll-skip");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn poll_skip_allowed_with_subscribe() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 2, 1)
        .send_ok(0, "t-0", 3, 2)
        .poll(1, &[("t-0", &[(0, 1), (1, 2), (2, 3)])])
        .subscribe(2, &["t-0"])
        .poll(2, &[("t-0", &[(0, 1)])])
        .poll(2, &[("t-0", &[(2, 3)])])
        .check();
    assert_eq!(has(&r, "poll-skip"), 1);
    assert!(r.allowed.contains(&"poll-skip".to_string()));
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn int_poll_skip_and_int_nonmonotonic_poll() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 2, 1)
        .send_ok(0, "t-0", 3, 2)
        .poll(1, &[("t-0", &[(0, 1), (1, 2), (2, 3)])])
        .poll(2, &[("t-0", &[(0, 1), (2, 3)])])
        .poll(3, &[("t-0", &[(1, 2), (0, 1)])])
        .check();
    assert_eq!(has(&r, "int-poll-skip"), 1);
    assert_eq!(has(&r, "int-nonmonotonic-poll"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn int_poll_near_miss_marker_gap_inside_one_poll() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 3, 5)
        .poll(2, &[("t-0", &[(0, 1), (5, 3)])])
        .check();
    lacks(&r, "int-poll-skip");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn nonmonotonic_send() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 5)
        .send_ok(0, "t-0", 2, 4)
        .poll(1, &[("t-0", &[(4, 2), (5, 1)])])
        .check();
    assert_eq!(has(&r, "nonmonotonic-send"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn nonmonotonic_send_near_miss_other_process() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 5)
        .send_ok(1, "t-0", 2, 4)
        .poll(1, &[("t-0", &[(4, 2), (5, 1)])])
        .check();
    lacks(&r, "nonmonotonic-send");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn int_send_skip_is_allowed_and_int_nonmonotonic_send_is_not() {
    let r = B::new()
        .send_ok(1, "t-0", 9, 1)
        .send_many(0, &[("t-0", 1, Some(0)), ("t-0", 2, Some(2))])
        .poll(1, &[("t-0", &[(0, 1), (1, 9), (2, 2)])])
        .check();
    assert_eq!(has(&r, "int-send-skip"), 1);
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());

    let r = B::new()
        .send_many(0, &[("t-0", 1, Some(1)), ("t-0", 2, Some(0))])
        .poll(1, &[("t-0", &[(0, 2), (1, 1)])])
        .check();
    assert_eq!(has(&r, "int-nonmonotonic-send"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn int_send_near_miss_consecutive_offsets() {
    let r = B::new()
        .send_many(0, &[("t-0", 1, Some(0)), ("t-0", 2, Some(1))])
        .poll(1, &[("t-0", &[(0, 1), (1, 2)])])
        .check();
    assert!(r.anomalies.is_empty(), "{}", r.render_text());
}

#[test]
fn g1a_read_of_failed_send() {
    let r = B::new()
        .send_not_ok(0, "t-0", 1, "fail")
        .poll(1, &[("t-0", &[(0, 1)])])
        .check();
    assert_eq!(has(&r, "G1a"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn g1a_near_miss_info_poll_of_failed_send() {
    // Only ok operations' reads count for G1a.
    let r = B::new()
        .send_not_ok(0, "t-0", 1, "fail")
        .poll_ty(1, "info", &[("t-0", &[(0, 1)])])
        .check();
    lacks(&r, "G1a");
}

#[test]
fn g1a_read_of_aborted_transaction() {
    let r = B::new()
        .txn(0, "fail", json!([["send", "t-0", 1], ["send", "t-1", 2]]), json!(null))
        .poll(1, &[("t-0", &[(0, 1)])])
        .check();
    assert_eq!(has(&r, "G1a"), 1);
}

#[test]
fn precommitted_read() {
    let r = B::new()
        .txn(
            0,
            "ok",
            json!([["send", "t-0", 1], ["poll"]]),
            json!([["send", "t-0", [0, 1]], ["poll", {"t-0": [[0, 1]]}]]),
        )
        .check();
    assert_eq!(has(&r, "precommitted-read"), 1);
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn precommitted_read_near_miss_other_txn_wrote_it() {
    let r = B::new()
        .txn(0, "ok", json!([["send", "t-0", 1]]), json!([["send", "t-0", [0, 1]]]))
        .txn(1, "ok", json!([["poll"]]), json!([["poll", {"t-0": [[0, 1]]}]]))
        .check();
    lacks(&r, "precommitted-read");
    assert_eq!(r.valid, Validity::Valid, "{}", r.render_text());
}

#[test]
fn crash_forgets_the_position() {
    let r = B::new()
        .send_ok(0, "t-0", 1, 0)
        .send_ok(0, "t-0", 2, 1)
        .poll(2, &[("t-0", &[(0, 1), (1, 2)])])
        .ev(json!(2), "info", "crash", json!(null))
        .poll(2, &[("t-0", &[(0, 1)])])
        .check();
    lacks(&r, "nonmonotonic-poll");
}
