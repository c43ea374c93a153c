//! Consumer groups with real clients against the real `dlog-broker`
//! binary, standalone, at the clients' default settings:
//! - kafka-python: two group consumers split a topic of six partitions;
//!   confluent-kafka: auto-commit, and the next consumer of the group
//!   resumes where the first stopped; an admin client lists, describes and
//!   reads the committed offsets (`tests/clients/consumer_groups.py`);
//! - kcat's balanced consumer (`-G`): a group reads a topic once, a second
//!   run of the group reads nothing, and after a broker restart the group
//!   still resumes at its committed offset (loaded from
//!   `__consumer_offsets`), reading only what was produced since.
#![cfg(not(madsim))]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use dlog_tests::{free_port, start_standalone_broker};

fn python(args: &[&str]) -> String {
    let output = Command::new("python3").args(args).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "python failed ({}):\n{stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn kafka_python_and_confluent_kafka_groups_split_partitions_and_resume_from_commits() {
    let data_dir = std::env::temp_dir().join(format!("dlog-groups-py-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = free_port();
    let _broker = start_standalone_broker(port, &data_dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/consumer_groups.py");
    let out = python(&[script.to_str().unwrap(), &format!("127.0.0.1:{port}")]);
    assert!(out.contains("once one closed, the other owned all 6"), "{out}");
    assert!(out.contains("the next consumer resumed at offset 40"), "{out}");
    assert!(out.contains("admin: both groups listed"), "{out}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

fn kcat_produce(bootstrap: &str, topic: &str, values: &[String]) {
    let mut child = Command::new("kcat")
        .args(["-b", bootstrap, "-P", "-t", topic])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat runs (make deps installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    for value in values {
        writeln!(stdin, "{value}").expect("write to kcat");
    }
    drop(stdin);
    assert!(child.wait().expect("kcat exits").success(), "kcat -P failed");
}

/// One run of kcat's balanced consumer in `group`, until the end of the
/// topic: the values it printed.
fn kcat_group_read(bootstrap: &str, group: &str, topic: &str) -> Vec<String> {
    let output = Command::new("timeout")
        .args(["60", "kcat", "-b", bootstrap, "-G", group, "-X", "auto.offset.reset=earliest", "-e", topic])
        .output()
        .expect("kcat runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kcat -G failed ({}): {stderr}", output.status);
    assert!(stderr.contains("rebalanced") && stderr.contains("assigned"), "kcat never joined the group: {stderr}");
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}

#[test]
fn kcat_group_resumes_at_its_committed_offset_across_a_broker_restart() {
    let data_dir = std::env::temp_dir().join(format!("dlog-groups-kcat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let (topic, group) = ("kcat-groups", "kcat-group");
    let first: Vec<String> = (0..10).map(|i| format!("first-{i}")).collect();
    let broker = start_standalone_broker(port, &data_dir);
    kcat_produce(&bootstrap, topic, &first);
    assert_eq!(kcat_group_read(&bootstrap, group, topic), first, "the group's first run reads the whole topic");
    assert_eq!(kcat_group_read(&bootstrap, group, topic), Vec::<String>::new(), "the group committed: a second run reads nothing");
    drop(broker);
    let _broker = start_standalone_broker(port, &data_dir);
    let second: Vec<String> = (0..5).map(|i| format!("second-{i}")).collect();
    kcat_produce(&bootstrap, topic, &second);
    assert_eq!(
        kcat_group_read(&bootstrap, group, topic),
        second,
        "after a restart the group resumes at its committed offset, loaded from __consumer_offsets"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
