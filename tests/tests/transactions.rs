//! Real transactional clients against the real `dlog-broker` binary,
//! standalone (`tests/clients/transactions.py`; `make deps` installs
//! confluent-kafka): a transaction across two partitions commits and
//! another aborts, read_committed sees exactly the committed records and
//! read_uncommitted sees both, and a second producer with the same
//! `transactional.id` fences the first mid-transaction; kafka-python's
//! transactional producer commits and aborts, read back the same way.
#![cfg(not(madsim))]

use std::path::Path;
use std::process::Command;

use dlog_tests::{free_port, start_standalone_broker};

#[test]
fn confluent_kafka_transactions_commit_abort_and_fence() {
    let data_dir = std::env::temp_dir().join(format!("dlog-transactions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = free_port();
    let _broker = start_standalone_broker(port, &data_dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/transactions.py");
    let output = Command::new("python3").arg(&script).arg(format!("127.0.0.1:{port}")).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().last() == Some("ok"),
        "{} failed ({}):\n{stdout}\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
