//! A real Kafka client (librdkafka's kcat) against the real `dlog-broker`
//! binary: 1,000 messages written with `kcat -P` come back with `kcat -C -e`
//! in order, and again after the broker is killed with SIGKILL and
//! restarted (acknowledged data was on disk, and recovery finds it).
#![cfg(not(madsim))]

use std::io::Write;
use std::process::{Command, Stdio};

use dlog_tests::{free_port, start_standalone_broker, BrokerProcess};

fn start_broker(port: u16, data_dir: &std::path::Path) -> BrokerProcess {
    start_standalone_broker(port, data_dir)
}

fn kcat() -> Command {
    let found = Command::new("kcat").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "kcat is not installed: `make test` installs it (apt-get install -y kcat)"
    );
    Command::new("kcat")
}

fn consume_all(port: u16, topic: &str) -> Vec<String> {
    let output = kcat()
        .args(["-C", "-b", &format!("127.0.0.1:{port}"), "-t", topic, "-o", "beginning", "-e", "-q"])
        .output()
        .expect("kcat -C runs");
    assert!(output.status.success(), "kcat -C failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn kcat_round_trip_survives_sigkill() {
    let data_dir = std::env::temp_dir().join(format!("dlog-kcat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = free_port();
    let topic = "kcat-e2e";
    let sent: Vec<String> = (1..=1000).map(|i| format!("message-{i:04}")).collect();
    let broker = start_broker(port, &data_dir);

    let mut producer = kcat()
        .args(["-P", "-b", &format!("127.0.0.1:{port}"), "-t", topic])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat -P runs");
    let mut stdin = producer.stdin.take().unwrap();
    for line in &sent {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let produced = producer.wait_with_output().unwrap();
    assert!(produced.status.success(), "kcat -P failed: {}", String::from_utf8_lossy(&produced.stderr));

    assert_eq!(consume_all(port, topic), sent, "kcat -C must read back all 1,000 messages in order");

    drop(broker); // SIGKILL: no clean shutdown
    let _broker = start_broker(port, &data_dir);
    assert_eq!(consume_all(port, topic), sent, "after SIGKILL and restart the same 1,000 messages come back");
    let _ = std::fs::remove_dir_all(&data_dir);
}
