//! Real transactional producers against the real `dlog-broker` binary,
//! standalone (`tests/clients/transactional_producers.py`; `make deps`
//! installs both clients): kafka-python and confluent-kafka each
//! initialise a transactional id, commit a transaction and abort one, and
//! a second confluent-kafka instance of an id fences the first. This
//! checks the transaction coordinator's side only.
#![cfg(not(madsim))]

use std::path::Path;
use std::process::Command;

use dlog_tests::{free_port, start_standalone_broker};

#[test]
fn transactional_kafka_python_and_confluent_kafka_commit_abort_and_fence() {
    let data_dir = std::env::temp_dir().join(format!("dlog-transactional-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = free_port();
    let _broker = start_standalone_broker(port, &data_dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/transactional_producers.py");
    let output = Command::new("python3").arg(&script).arg(format!("127.0.0.1:{port}")).output().expect("python3 runs");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "python failed ({}):\n{out}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    for line in [
        "kafka-python: committed and aborted",
        "confluent: committed and aborted",
        "confluent: the first instance is fenced",
        "confluent: the second instance committed",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}
