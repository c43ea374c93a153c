//! KIP-848 consumer groups with a real client against the real
//! `dlog-broker` binary, standalone: two confluent-kafka consumers with
//! `group.protocol=consumer` split a topic of six partitions (disjoint at
//! every poll, covering all six), when one closes the other owns all six,
//! and a new consumer of the group resumes at the committed offsets
//! (`tests/clients/consumer_groups_kip848.py`).
#![cfg(not(madsim))]

use std::path::Path;
use std::process::Command;

use dlog_tests::{free_port, start_standalone_broker};

#[test]
fn confluent_kafka_consumer_protocol_splits_rebalances_and_resumes() {
    let data_dir = std::env::temp_dir().join(format!("dlog-groups-kip848-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = free_port();
    let _broker = start_standalone_broker(port, &data_dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/consumer_groups_kip848.py");
    let output = Command::new("python3").args([script.to_str().unwrap(), &format!("127.0.0.1:{port}")]).output().expect("python3 runs");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "python failed ({}):\n{out}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    assert!(out.contains("two consumers split the 6 partitions"), "{out}");
    assert!(out.contains("once one closed, the other owned all 6"), "{out}");
    assert!(out.contains("the new consumer resumed at the committed offsets"), "{out}");
    let _ = std::fs::remove_dir_all(&data_dir);
}
