//! Real idempotent producers against the real `dlog-broker` binary,
//! standalone: kafka-python 3.x's KafkaProducer() at its defaults
//! (idempotence on) and confluent-kafka with enable.idempotence=true each
//! get a producer id from InitProducerId, send 100 records, have every one
//! acknowledged, and read each back exactly once
//! (`tests/clients/idempotent_producers.py`; `make deps` installs both).
//! Then the broker is restarted and a producer gets an id no earlier
//! process handed out.
#![cfg(not(madsim))]

use std::path::Path;
use std::process::Command;

use dlog_tests::{free_port, start_standalone_broker, BrokerProcess};

fn start_broker(port: u16, data_dir: &std::path::Path) -> BrokerProcess {
    start_standalone_broker(port, data_dir)
}

fn python(args: &[&str]) -> String {
    let output = Command::new("python3").args(args).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "python failed ({}):\n{stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The producer id kafka-python gets from InitProducerId.
fn producer_id(bootstrap: &str) -> i64 {
    let script = "import sys; from kafka import KafkaProducer\n\
                  p = KafkaProducer(bootstrap_servers=sys.argv[1]); p.send('idem-id', b'x').get(timeout=30)\n\
                  print(p._transaction_manager.producer_id_and_epoch.producer_id); p.close()";
    python(&["-c", script, bootstrap]).trim().parse().expect("a producer id")
}

#[test]
fn idempotent_kafka_python_and_confluent_kafka_produce_exactly_once() {
    let data_dir = std::env::temp_dir().join(format!("dlog-idempotent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let broker = start_broker(port, &data_dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/idempotent_producers.py");
    let out = python(&[script.to_str().unwrap(), &bootstrap]);
    assert!(out.contains("kafka-python: 100 acknowledged, 100 read back exactly once"), "{out}");
    assert!(out.contains("confluent: 100 acknowledged, 100 read back exactly once"), "{out}");
    let before = producer_id(&bootstrap);
    drop(broker);
    let _broker = start_broker(port, &data_dir);
    let after = producer_id(&bootstrap);
    assert!(after > before, "producer id {after} after a restart is not above {before}: ids must never be reused");
    let _ = std::fs::remove_dir_all(&data_dir);
}
