//! TxnOffsetCommit through the broker's frame handler, then the marker
//! hook: pending offsets are invisible to OffsetFetch (UNSTABLE_OFFSET_COMMIT
//! with `require_stable`), a commit marker written to `__consumer_offsets`
//! and reported through [`Broker::groups_txn_marker_written`] makes them
//! committed, an abort drops them; and a restarted broker, loading the
//! partition from its transactional batches and control batches, agrees.

use std::sync::Arc;

use kafka_protocol::messages::{
    offset_fetch_request::OffsetFetchRequestTopic,
    txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic},
    ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, ProducerId, RequestHeader, TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use super::OFFSETS_TOPIC;
use crate::clock::ManualClock;
use crate::config::BrokerConfig;
use crate::disk::RealDisk;
use crate::server::Broker;
use crate::wire::codec::{decode_response, encode_request};

const TOPIC: &str = "t";

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn open(dir: &std::path::Path) -> Arc<Broker> {
    let mut config = BrokerConfig { data_dir: dir.to_path_buf(), offsets_topic_num_partitions: 3, ..BrokerConfig::default() };
    config.group.initial_rebalance_delay_ms = 0;
    Broker::open(config, Arc::new(RealDisk), ManualClock::new(1_000)).expect("broker opens")
}

async fn call<Req: Encodable, Resp: Decodable>(broker: &Broker, api: ApiKey, version: i16, request: &Req) -> Resp {
    let header = RequestHeader::default().with_request_api_key(api as i16).with_request_api_version(version).with_correlation_id(9).with_client_id(Some(s("txn-tests")));
    let frame = encode_request(&header, request).expect("request encodes");
    let response = broker.handle_frame(&frame).await.expect("connection stays").expect("a response");
    decode_response::<Resp>(api, version, &response).expect("response decodes").1
}

async fn txn_commit(broker: &Broker, version: i16, group: &str, producer_id: i64, offset: i64) -> i16 {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("txn")))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(0)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(s(TOPIC)))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset).with_committed_metadata(Some(s("")))])]);
    let response: TxnOffsetCommitResponse = call(broker, ApiKey::TxnOffsetCommit, version, &request).await;
    assert_eq!(response.topics.len(), 1);
    response.topics[0].partitions[0].error_code
}

/// OffsetFetch v7 of partition 0 of the topic: (offset, error code).
async fn fetch(broker: &Broker, group: &str, require_stable: bool) -> (i64, i16) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default().with_name(TopicName(s(TOPIC))).with_partition_indexes(vec![0])]))
        .with_require_stable(require_stable);
    let response: OffsetFetchResponse = call(broker, ApiKey::OffsetFetch, 7, &request).await;
    assert_eq!(response.error_code, 0);
    let partition = &response.topics[0].partitions[0];
    (partition.committed_offset, partition.error_code)
}

/// Writes `producer_id`'s transaction marker to the group's
/// `__consumer_offsets` partition, as WriteTxnMarkers does, then reports
/// it through the hook.
fn write_marker(broker: &Broker, group: &str, producer_id: i64, commit: bool) {
    let partition = broker.with_group_coordinator(Some(group), |core, _| core.partition_of(group)).expect("coordinator");
    let log = broker.partition(OFFSETS_TOPIC, partition).expect("the offsets partition");
    log.lock().unwrap_or_else(|e| e.into_inner()).append_marker_as_leader(producer_id, 0, commit, 0, None).expect("the marker appends");
    broker.groups_txn_marker_written(partition, producer_id, commit);
}

#[tokio::test]
async fn txn_offsets_wait_for_their_marker_and_reload_the_same() {
    let dir = std::env::temp_dir().join(format!("dlog-groups-txn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let broker = open(&dir);
    for version in 0..=3 {
        let group = format!("committed-v{version}");
        assert_eq!(txn_commit(&broker, version, &group, 5, 10 + i64::from(version)).await, 0, "v{version} accepted");
        assert_eq!(fetch(&broker, &group, false).await, (-1, 0), "v{version}: pending offsets are invisible");
        assert_eq!(fetch(&broker, &group, true).await, (-1, ResponseError::UnstableOffsetCommit.code()), "v{version}: require_stable says unstable");
    }
    assert_eq!(txn_commit(&broker, 3, "aborted", 6, 99).await, 0);
    assert_eq!(txn_commit(&broker, 3, "open", 8, 77).await, 0);
    for version in 0..=3 {
        write_marker(&broker, &format!("committed-v{version}"), 5, true);
    }
    write_marker(&broker, "aborted", 6, false);
    for version in 0..=3 {
        let expected = (10 + i64::from(version), 0);
        assert_eq!(fetch(&broker, &format!("committed-v{version}"), true).await, expected, "the commit marker made it committed");
    }
    assert_eq!(fetch(&broker, "aborted", true).await, (-1, 0), "the abort marker dropped it");
    assert_eq!(fetch(&broker, "open", true).await.1, ResponseError::UnstableOffsetCommit.code());
    assert_eq!(txn_commit(&broker, 3, "", 5, 1).await, ResponseError::InvalidGroupId.code());

    broker.flush_all();
    broker.shutdown();
    drop(broker);
    let reopened = open(&dir);
    for version in 0..=3 {
        assert_eq!(fetch(&reopened, &format!("committed-v{version}"), true).await, (10 + i64::from(version), 0), "reloaded: committed");
    }
    assert_eq!(fetch(&reopened, "aborted", true).await, (-1, 0), "reloaded: aborted");
    assert_eq!(fetch(&reopened, "open", true).await, (-1, ResponseError::UnstableOffsetCommit.code()), "reloaded: still pending");
    write_marker(&reopened, "open", 8, true);
    assert_eq!(fetch(&reopened, "open", true).await, (77, 0));
    let _ = std::fs::remove_dir_all(&dir);
}
