//! Idempotent produce through the broker's request handler: a retried
//! batch is answered with its original offset and not written again; a
//! gap, an older epoch and an unknown producer get Kafka's codes; and a
//! reopened broker still recognises a retry (its producer state is rebuilt
//! from the log).

mod common;

use std::sync::Arc;

use broker::clock::ManualClock;
use broker::config::BrokerConfig;
use broker::disk::RealDisk;
use broker::server::Broker;
use broker::storage::{build_batch, set_producer, SimpleRecord};
use common::{call, create_topic, fetch, open_broker, record_values, topic_name};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

fn idempotent_batch(pid: i64, epoch: i16, first_seq: i32, values: &[&str]) -> bytes::Bytes {
    let records: Vec<SimpleRecord> =
        values.iter().map(|v| SimpleRecord { key: None, value: Some(v.as_bytes().to_vec()), timestamp_ms: 1_000 }).collect();
    let mut batch = build_batch(&records);
    set_producer(&mut batch, pid, epoch, first_seq);
    batch.into()
}

async fn send(broker: &Broker, records: bytes::Bytes) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(1_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(topic_name("idem"))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))])]);
    let response: ProduceResponse = call(broker, ApiKey::Produce, 9, &request).await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test]
async fn retries_are_deduplicated_and_out_of_order_batches_refused() {
    let (broker, dir) = open_broker("idempotence");
    assert_eq!(create_topic(&broker, "idem", 1).await, 0);
    assert_eq!(send(&broker, idempotent_batch(7, 0, 0, &["a", "b"])).await, (0, 0));
    assert_eq!(send(&broker, idempotent_batch(7, 0, 2, &["c"])).await, (0, 2));
    // A retry of either: the original offset, nothing written.
    assert_eq!(send(&broker, idempotent_batch(7, 0, 0, &["a", "b"])).await, (0, 0));
    assert_eq!(send(&broker, idempotent_batch(7, 0, 2, &["c"])).await, (0, 2));
    // A gap, an unknown producer, a new epoch not at 0.
    assert_eq!(send(&broker, idempotent_batch(7, 0, 5, &["x"])).await.0, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    assert_eq!(send(&broker, idempotent_batch(8, 0, 3, &["x"])).await.0, 59, "UNKNOWN_PRODUCER_ID");
    assert_eq!(send(&broker, idempotent_batch(7, 1, 3, &["x"])).await.0, 45, "a new epoch starts at 0");
    assert_eq!(send(&broker, idempotent_batch(7, 1, 0, &["d"])).await, (0, 3));
    assert_eq!(send(&broker, idempotent_batch(7, 0, 3, &["x"])).await.0, 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(record_values(&fetch(&broker, "idem", 0, 0).await), vec!["a", "b", "c", "d"]);

    // Reopened: the state comes back from the log.
    broker.shutdown();
    drop(broker);
    let config = BrokerConfig { data_dir: dir.clone(), ..BrokerConfig::default() };
    let broker = Broker::open(config, Arc::new(RealDisk), ManualClock::new(2_000)).unwrap();
    assert_eq!(send(&broker, idempotent_batch(7, 1, 0, &["d"])).await, (0, 3), "a retry after a restart");
    assert_eq!(send(&broker, idempotent_batch(7, 1, 1, &["e"])).await, (0, 4));
    assert_eq!(record_values(&fetch(&broker, "idem", 0, 0).await), vec!["a", "b", "c", "d", "e"]);
    let _ = std::fs::remove_dir_all(&dir);
}
