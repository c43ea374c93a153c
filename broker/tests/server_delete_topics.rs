//! DeleteTopics on a standalone broker (no controller quorum): a deleted
//! topic disappears from Metadata, Produce and Fetch to it fail with
//! UNKNOWN_TOPIC_OR_PARTITION, and a topic created again under the same
//! name starts empty, also after a restart and after a crash that left the
//! old partition files behind. Bad DeleteTopics requests get an error code
//! or a closed connection, never a panic.
//!
//! Run: `cargo test -p dlog-broker --test server_delete_topics`.

mod common;

use std::path::Path;
use std::sync::Arc;

use broker::clock::ManualClock;
use broker::config::BrokerConfig;
use broker::disk::RealDisk;
use broker::server::Broker;
use broker::wire::DecodeError;
use bytes::Bytes;
use common::{call, create_topic as create, fetch, open_broker, produce, record_values as values};
use kafka_protocol::messages::{
    delete_topics_request::DeleteTopicState,
    metadata_request::MetadataRequestTopic,
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;

const UNKNOWN_TOPIC: i16 = 3; // UNKNOWN_TOPIC_OR_PARTITION

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// DeleteTopics of one topic by name at `version`; the result's error code.
async fn delete(broker: &Broker, topic: &str, version: i16) -> i16 {
    let request = if version >= 6 {
        DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_name(Some(name(topic)))])
    } else {
        DeleteTopicsRequest::default().with_topic_names(vec![name(topic)])
    }
    .with_timeout_ms(1_000);
    let response: DeleteTopicsResponse = call(broker, ApiKey::DeleteTopics, version, &request).await;
    assert_eq!(response.responses.len(), 1);
    let result = &response.responses[0];
    assert_eq!(result.name.as_ref().map(|n| n.0.as_str()), Some(topic), "v{version} echoes the name");
    result.error_code
}

/// Metadata for `topic` without auto-creation: the topic's error code.
async fn metadata_code(broker: &Broker, topic: &str) -> i16 {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = call(broker, ApiKey::Metadata, 9, &request).await;
    response.topics[0].error_code
}

/// Every topic Metadata lists when asked for all.
async fn listed(broker: &Broker) -> Vec<String> {
    let request = MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false);
    let response: MetadataResponse = call(broker, ApiKey::Metadata, 9, &request).await;
    response.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_string())).collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

fn reopen(dir: &Path) -> Arc<Broker> {
    let config = BrokerConfig {
        data_dir: dir.to_path_buf(),
        ..BrokerConfig::default()
    };
    Broker::open(config, Arc::new(RealDisk), ManualClock::new(1_000)).unwrap()
}

#[tokio::test]
async fn deleted_topic_is_gone_and_a_recreated_one_starts_empty() {
    let (broker, dir) = open_broker("delete-standalone");
    assert_eq!(create(&broker, "t", 2).await, 0);
    assert_eq!(create(&broker, "keep", 1).await, 0);
    for (partition, value) in [(0, b"old-0a" as &[u8]), (0, b"old-0b"), (1, b"old-1")] {
        let value: &'static [u8] = Box::leak(value.to_vec().into_boxed_slice());
        assert_eq!(produce(&broker, "t", partition, value).await.0, 0);
    }
    assert_eq!(produce(&broker, "keep", 0, b"kept").await.0, 0);
    assert_eq!(values(&fetch(&broker, "t", 0, 0).await), ["old-0a", "old-0b"]);

    assert_eq!(delete(&broker, "t", 4).await, 0);

    // Gone: from Metadata, for Produce and Fetch, and from the disk.
    assert_eq!(listed(&broker).await, ["keep"]);
    assert_eq!(metadata_code(&broker, "t").await, UNKNOWN_TOPIC);
    assert_eq!(produce(&broker, "t", 0, b"late").await.0, UNKNOWN_TOPIC);
    assert_eq!(fetch(&broker, "t", 0, 0).await.error_code, UNKNOWN_TOPIC);
    assert!(!dir.join("t.topic").exists());
    for partition in ["t-0", "t-1"] {
        assert_eq!(files_in(&dir.join(partition)), Vec::<String>::new(), "{partition} still holds files");
    }
    // Deleting it again, or a topic that never existed: UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(delete(&broker, "t", 4).await, UNKNOWN_TOPIC);
    assert_eq!(delete(&broker, "never-was", 1).await, UNKNOWN_TOPIC);
    // The other topic is untouched.
    assert_eq!(values(&fetch(&broker, "keep", 0, 0).await), ["kept"]);

    // Created again (by CreateTopics): empty, offsets from 0.
    assert_eq!(create(&broker, "t", 2).await, 0);
    for partition in [0, 1] {
        let data = fetch(&broker, "t", partition, 0).await;
        assert_eq!((data.error_code, data.high_watermark), (0, 0), "partition {partition}");
        assert_eq!(values(&data), Vec::<String>::new());
    }
    assert_eq!(produce(&broker, "t", 0, b"new").await, (0, 0));
    assert_eq!(values(&fetch(&broker, "t", 0, 0).await), ["new"]);

    // The delete is durable: after a restart the topic stays deleted, and
    // Metadata's auto-create makes a fresh, empty one.
    assert_eq!(delete(&broker, "t", 6).await, 0);
    drop(broker);
    let broker = reopen(&dir);
    assert_eq!(listed(&broker).await, ["keep"]);
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("t")))]))
        .with_allow_auto_topic_creation(true);
    let response: MetadataResponse = call(&broker, ApiKey::Metadata, 9, &request).await;
    assert_eq!(response.topics[0].error_code, 0, "auto-created");
    let data = fetch(&broker, "t", 0, 0).await;
    assert_eq!((data.error_code, data.high_watermark), (0, 0));
    let _ = std::fs::remove_dir_all(dir);
}

/// A crash right after the delete's commit point (the `.topic` file gone,
/// the partition files not yet): the next create of the name must not pick
/// the old records up.
#[tokio::test]
async fn leftover_partition_files_of_a_deleted_topic_are_not_served() {
    let (broker, dir) = open_broker("delete-leftovers");
    assert_eq!(create(&broker, "t", 1).await, 0);
    assert_eq!(produce(&broker, "t", 0, b"old").await.0, 0);
    broker.shutdown();
    drop(broker);
    std::fs::remove_file(dir.join("t.topic")).unwrap();
    assert!(!files_in(&dir.join("t-0")).is_empty());

    let broker = reopen(&dir);
    assert_eq!(metadata_code(&broker, "t").await, UNKNOWN_TOPIC);
    assert_eq!(create(&broker, "t", 1).await, 0);
    let data = fetch(&broker, "t", 0, 0).await;
    assert_eq!((data.error_code, data.high_watermark), (0, 0));
    assert_eq!(values(&data), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn every_advertised_version_deletes_by_name() {
    let (broker, dir) = open_broker("delete-versions");
    let response: ApiVersionsResponse = call(&broker, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    let advertised = response.api_keys.iter().find(|k| k.api_key == ApiKey::DeleteTopics as i16).expect("DeleteTopics advertised");
    assert_eq!((advertised.min_version, advertised.max_version), (1, 6));
    for version in 1..=6 {
        let topic = format!("v{version}");
        assert_eq!(create(&broker, &topic, 1).await, 0);
        assert_eq!(delete(&broker, &topic, version).await, 0, "v{version}");
        assert_eq!(metadata_code(&broker, &topic).await, UNKNOWN_TOPIC, "v{version}");
        assert_eq!(delete(&broker, &topic, version).await, UNKNOWN_TOPIC, "v{version}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// v6 entries may name a topic by id: ids alone are refused with
/// UNKNOWN_TOPIC_ID, an entry with both or neither with INVALID_REQUEST;
/// the other entries of the request are still served.
#[tokio::test]
async fn topic_ids_are_refused_with_an_error_code() {
    let (broker, dir) = open_broker("delete-ids");
    assert_eq!(create(&broker, "named", 1).await, 0);
    let by_id = state_with_id();
    assert!(!by_id.topic_id.is_nil());
    let id = by_id.topic_id;
    let request = DeleteTopicsRequest::default().with_timeout_ms(1_000).with_topics(vec![
        by_id.clone(),
        by_id.with_name(Some(name("named"))),
        DeleteTopicState::default(),
        DeleteTopicState::default().with_name(Some(name("named"))),
    ]);
    let response: DeleteTopicsResponse = call(&broker, ApiKey::DeleteTopics, 6, &request).await;
    let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        [
            ResponseError::UnknownTopicId.code(),
            ResponseError::InvalidRequest.code(),
            ResponseError::InvalidRequest.code(),
            0
        ]
    );
    assert_eq!(response.responses[0].topic_id, id, "the id is echoed");
    assert!(response.responses[0].error_message.is_some());
    assert_eq!(metadata_code(&broker, "named").await, UNKNOWN_TOPIC);
    let _ = std::fs::remove_dir_all(dir);
}

/// A v6 entry naming a topic by a (non-nil) id only, decoded from its wire
/// form: a null compact string, 16 id bytes, no tagged fields.
fn state_with_id() -> DeleteTopicState {
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&[7u8; 16]);
    bytes.push(0);
    DeleteTopicState::decode(&mut Bytes::from(bytes), 6).unwrap()
}

#[tokio::test]
async fn malformed_or_unsupported_delete_topics_never_panics() {
    let (broker, dir) = open_broker("delete-malformed");
    let header = |version: i16| {
        let mut frame = Vec::new();
        frame.extend_from_slice(&(ApiKey::DeleteTopics as i16).to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&9i32.to_be_bytes());
        frame
    };
    // Versions outside 1..=6: refused by the decoder (the connection closes,
    // as for every API but ApiVersions).
    for version in [0, 7, -1, i16::MAX] {
        let result = broker.handle_frame(&Bytes::from(header(version))).await;
        assert!(
            matches!(result, Err(DecodeError::UnsupportedVersion { api_key: 20, .. })),
            "v{version}: {result:?}"
        );
    }
    // Truncated and garbage bodies at every supported version.
    for version in 1..=6 {
        for body in [&[][..], &[0xff][..], &[0, 0, 0, 5, 0, 1][..], &[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0][..]] {
            let mut frame = header(version);
            frame.extend_from_slice(body);
            let result = broker.handle_frame(&Bytes::from(frame)).await;
            assert!(matches!(result, Err(DecodeError::Malformed(_))), "v{version} {body:?}: {result:?}");
        }
    }
    // A well-formed header whose topic names are not valid topic names: an
    // error code per topic.
    let request = DeleteTopicsRequest::default().with_topic_names(vec![name(""), name("../x"), name(&"y".repeat(300))]);
    let response: DeleteTopicsResponse = call(&broker, ApiKey::DeleteTopics, 4, &request).await;
    assert!(response.responses.iter().all(|r| r.error_code == UNKNOWN_TOPIC), "{response:?}");
    let _ = std::fs::remove_dir_all(dir);
}
