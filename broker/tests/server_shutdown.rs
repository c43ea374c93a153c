//! A clean shutdown marks every log closed, so the next start validates
//! only each log's tail, and no write lands after the mark.

mod common;

use std::sync::Arc;

use broker::clock::ManualClock;
use broker::config::BrokerConfig;
use broker::disk::RealDisk;
use broker::server::Broker;
use broker::storage::CLEAN_SHUTDOWN_FILE;
use common::{create_topic, fetch, open_broker, produce, record_values};

const KAFKA_STORAGE_ERROR: i16 = 56;

#[tokio::test]
async fn shutdown_marks_logs_clean_refuses_later_writes_and_keeps_every_record() {
    let (broker, dir) = open_broker("shutdown-clean");
    assert_eq!(create_topic(&broker, "t", 2).await, 0);
    for (partition, value) in [(0, &b"a"[..]), (0, b"b"), (1, b"c")] {
        assert_eq!(produce(&broker, "t", partition, value).await.0, 0);
    }

    broker.shutdown();
    for partition in 0..2 {
        assert!(dir.join(format!("t-{partition}")).join(CLEAN_SHUTDOWN_FILE).exists(), "partition {partition} is marked clean");
    }
    assert_eq!(produce(&broker, "t", 0, b"late").await.0, KAFKA_STORAGE_ERROR, "no write after the clean mark");
    drop(broker);

    let config = BrokerConfig { data_dir: dir.clone(), ..BrokerConfig::default() };
    let reopened = Broker::open(config, Arc::new(RealDisk), ManualClock::new(2_000)).unwrap();
    assert!(!dir.join("t-0").join(CLEAN_SHUTDOWN_FILE).exists(), "opening consumes the mark, so a later crash is not taken for clean");
    assert_eq!(record_values(&fetch(&reopened, "t", 0, 0).await), ["a", "b"]);
    assert_eq!(record_values(&fetch(&reopened, "t", 1, 0).await), ["c"]);
    assert_eq!(produce(&reopened, "t", 0, b"d").await, (0, 2), "appends go on after the last record");
    let _ = std::fs::remove_dir_all(&dir);
}
