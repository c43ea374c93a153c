//! `dlog-check` on a history with a lost write exits 1 and names the value
//! and the partition; on a clean history it exits 0; on malformed input 3.
#![cfg(not(madsim))]

use std::process::Command;

use dlog_tests::workspace_binary;

fn check(history: &str) -> (i32, String) {
    let path = std::env::temp_dir().join(format!("dlog-check-{}-{}.jsonl", std::process::id(), history.len()));
    std::fs::write(&path, history).unwrap();
    let output = Command::new(workspace_binary("dlog-check")).arg(&path).output().expect("dlog-check runs");
    let _ = std::fs::remove_file(&path);
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Value 17 was acknowledged at offset 0 of t-0; a poll later read offset 1
/// (value 18) but nobody ever read 17: a lost write.
const LOST_WRITE: &str = r#"{"process":0,"type":"invoke","f":"send","value":[["send","t-0",17]],"time":1000}
{"process":0,"type":"ok","f":"send","value":[["send","t-0",[0,17]]],"time":2000}
{"process":0,"type":"invoke","f":"send","value":[["send","t-0",18]],"time":3000}
{"process":0,"type":"ok","f":"send","value":[["send","t-0",[1,18]]],"time":4000}
{"process":1,"type":"invoke","f":"poll","value":[["poll"]],"time":5000}
{"process":1,"type":"ok","f":"poll","value":[["poll",{"t-0":[[1,18]]}]],"time":6000}
"#;

#[test]
fn lost_write_exits_1_and_names_value_and_partition() {
    let (code, text) = check(LOST_WRITE);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("lost-write"), "{text}");
    assert!(text.contains("17") && text.contains("t-0"), "the report must name value 17 and partition t-0:\n{text}");
}

#[test]
fn clean_history_exits_0() {
    let clean = LOST_WRITE.replace(r#"{"t-0":[[1,18]]}"#, r#"{"t-0":[[0,17],[1,18]]}"#);
    let (code, text) = check(&clean);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn malformed_history_exits_3() {
    let (code, _) = check("{\"process\":0,\"type\":\"invoke\"\n");
    assert_eq!(code, 3);
}
