//! `dlog-check`: exit statuses, formats and the HTML file.

mod common;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::B;
use serde_json::{json, Value};

fn tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlog-check-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlog-check")).args(args).output().unwrap()
}

fn valid_history() -> String {
    B::new().send_ok(0, "t-0", 1, 0).poll(1, &[("t-0", &[(0, 1)])]).text()
}

fn lost_history() -> String {
    B::new().send_ok(0, "t-0", 17, 3).send_ok(2, "t-0", 18, 9).poll(4, &[("t-0", &[(9, 18)])]).text()
}

#[test]
fn valid_history_exits_0() {
    let p = tmp("valid.jsonl", &valid_history());
    let out = run(&[p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("VALID"));
}

#[test]
fn anomalies_exit_1_and_json_lists_them() {
    let p = tmp("lost.jsonl", &lost_history());
    let out = run(&[p.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], json!(false));
    assert_eq!(v["model"], json!("log"));
    assert_eq!(v["anomalies"]["lost-write"]["count"], json!(1));
    assert!(v["anomalies"]["lost-write"]["examples"][0]["text"].as_str().unwrap().contains("value 17"));
    assert!(v["allowed"].as_array().unwrap().contains(&json!("G0")));
    assert!(v["stats"]["events"].is_number());
}

#[test]
fn text_output_has_count_lines_and_witnesses() {
    let p = tmp("lost2.jsonl", &lost_history());
    let out = run(&[p.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("INVALID"));
    assert!(text.lines().any(|l| l.trim_start().starts_with("lost-write") && l.trim_end().ends_with('1')), "{text}");
    assert!(text.contains("no poll ever returned it"));
    assert!(text.contains("process 0 send (ok, lines 1-2)"), "{text}");
}

#[test]
fn exceeded_budget_exits_2_with_unknown() {
    let text = checker::gen::register_history(&checker::gen::RegisterGen { ops: 20_000, processes: 20, ..Default::default() });
    let p = tmp("big-register.jsonl", &text);
    let out = run(&[p.to_str().unwrap(), "--time-budget-ms", "0", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], json!("unknown"));
    assert_eq!(v["model"], json!("register"));
}

#[test]
fn malformed_input_exits_3_naming_the_line() {
    let mut text = valid_history();
    text.push_str("{\"process\":0,\"type\":\"ok\",\"f\":\"poll\",\"time\":99}\n");
    let p = tmp("bad.jsonl", &text);
    let out = run(&[p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 5"), "{err}");
}

#[test]
fn missing_file_exits_4() {
    let out = run(&["/nonexistent/history.jsonl"]);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn html_flag_writes_a_page() {
    let p = tmp("lost3.jsonl", &lost_history());
    let html = p.with_extension("html");
    let out = run(&[p.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("lost-write"));
}

#[test]
fn output_is_deterministic() {
    let text = checker::gen::log_history(&checker::gen::LogGen { events: 3000, ..Default::default() });
    // Corrupt it a little so there is something to report.
    let text = text.replacen("[[\"poll\",{\"t-", "[[\"poll\",{\"t-9\":[[100000,7]],\"t-", 3);
    let p = tmp("det.jsonl", &text);
    let a = run(&[p.to_str().unwrap(), "--format", "json"]);
    let b = run(&[p.to_str().unwrap(), "--format", "json"]);
    assert_eq!(a.status.code(), Some(1));
    assert_eq!(a.stdout, b.stdout);
}
