//! The KIP-848 group APIs through the broker's frame handler, standalone:
//! every advertised version of ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe answers with what a client relies on (member id,
//! epochs, assignments by topic id, Kafka's error codes), OffsetCommit v9
//! and OffsetFetch v9 are checked against member epochs, a group id serves
//! one protocol at a time, and committed offsets survive a restart while
//! membership (in memory only) does not: the member gets
//! UNKNOWN_MEMBER_ID and rejoins.

mod common;


use broker::server::Broker;
use common::{advertised_versions as versions, call, create_topic, fresh_dir as temp_dir, open_group_broker as open, str_bytes as s};
use kafka_protocol::messages::{
    consumer_group_heartbeat_request::TopicPartitions, join_group_request::JoinGroupRequestProtocol, metadata_request::MetadataRequestTopic,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic}, offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics}, ApiKey,
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, JoinGroupRequest, JoinGroupResponse,
    ListGroupsRequest, ListGroupsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;





async fn heartbeat(broker: &Broker, version: i16, request: &ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    call(broker, ApiKey::ConsumerGroupHeartbeat, version, request).await
}

fn join_request(group_id: &str, topic: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(s(topic))]))
        .with_topic_partitions(Some(vec![]))
}

async fn topic_uuid(broker: &Broker, topic: &str) -> uuid::Uuid {
    let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))]));
    let response: MetadataResponse = call(broker, ApiKey::Metadata, 12, &request).await;
    let id = response.topics[0].topic_id;
    assert!(!id.is_nil(), "Metadata v12 gives topic ids");
    // Asking by id gives the topic back.
    let by_id = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_topic_id(id)]));
    let response: MetadataResponse = call(broker, ApiKey::Metadata, 12, &by_id).await;
    assert_eq!(response.topics[0].name.as_ref().map(|n| n.0.as_str()), Some(topic));
    id
}

async fn commit(broker: &Broker, version: i16, group_id: &str, member_id: &str, epoch: i32, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_generation_id_or_member_epoch(epoch)
        .with_member_id(s(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset)])]);
    let response: OffsetCommitResponse = call(broker, ApiKey::OffsetCommit, version, &request).await;
    response.topics[0].partitions[0].error_code
}

/// OffsetFetch v9 of partition 0 of `t`: (group error, offset).
async fn fetch(broker: &Broker, group_id: &str, member: Option<(&str, i32)>) -> (i16, i64) {
    let mut group = OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s(group_id)))
        .with_topics(Some(vec![OffsetFetchRequestTopics::default().with_name(TopicName(s("t"))).with_partition_indexes(vec![0])]));
    if let Some((id, epoch)) = member {
        group = group.with_member_id(Some(s(id))).with_member_epoch(epoch);
    }
    let response: OffsetFetchResponse = call(broker, ApiKey::OffsetFetch, 9, &OffsetFetchRequest::default().with_groups(vec![group])).await;
    let answer = &response.groups[0];
    (answer.error_code, answer.topics.first().map_or(-1, |t| t.partitions[0].committed_offset))
}

#[tokio::test]
async fn every_consumer_group_api_version_answers() {
    let dir = temp_dir("consumer-groups-versions");
    let broker = open(&dir);
    assert_eq!(create_topic(&broker, "t", 4).await, 0);
    let t = topic_uuid(&broker, "t").await;

    for version in versions(ApiKey::ConsumerGroupHeartbeat) {
        let group_id = format!("hb-v{version}");
        // Join: the coordinator picks the member id, epoch 1, all four partitions.
        let a = heartbeat(&broker, version, &join_request(&group_id, "t")).await;
        assert_eq!(a.error_code, 0, "v{version}: {a:?}");
        let a_id = a.member_id.clone().expect("member id").as_str().to_string();
        assert_eq!((a.member_epoch, a.heartbeat_interval_ms), (1, 5000), "v{version}");
        let a_assignment = a.assignment.expect("first answer carries the assignment");
        assert_eq!(a_assignment.topic_partitions.len(), 1);
        assert_eq!((a_assignment.topic_partitions[0].topic_id, a_assignment.topic_partitions[0].partitions.clone()), (t, vec![0, 1, 2, 3]), "v{version}");

        // A second member gets nothing until the first has revoked.
        let b = heartbeat(&broker, version, &join_request(&group_id, "t")).await;
        let b_id = b.member_id.clone().unwrap().as_str().to_string();
        assert_eq!(b.member_epoch, 2, "v{version}");
        assert!(b.assignment.expect("join answer").topic_partitions.iter().all(|tp| tp.partitions.is_empty()), "v{version}: nothing free yet");
        let owned = |parts: Vec<i32>| Some(vec![TopicPartitions::default().with_topic_id(t).with_partitions(parts)]);
        let beat = |id: &str, epoch: i32, parts: Vec<i32>| {
            ConsumerGroupHeartbeatRequest::default().with_group_id(GroupId(s(&group_id))).with_member_id(s(id)).with_member_epoch(epoch).with_rebalance_timeout_ms(-1).with_topic_partitions(owned(parts))
        };
        let a2 = heartbeat(&broker, version, &beat(&a_id, 1, vec![0, 1, 2, 3])).await;
        assert_eq!(a2.member_epoch, 1, "v{version}: epoch held while revoking");
        let kept = a2.assignment.expect("revocation").topic_partitions[0].partitions.clone();
        assert_eq!(kept.len(), 2, "v{version}");
        let a3 = heartbeat(&broker, version, &beat(&a_id, 1, kept.clone())).await;
        assert_eq!(a3.member_epoch, 2, "v{version}: revoked, caught up");
        let b2 = heartbeat(&broker, version, &beat(&b_id, 2, vec![])).await;
        let got = b2.assignment.expect("released partitions").topic_partitions[0].partitions.clone();
        assert_eq!(got.len(), 2, "v{version}");
        assert!(got.iter().all(|p| !kept.contains(p)), "v{version}: disjoint");

        // Errors: fenced epoch, unknown member, bad assignor, missing fields.
        assert_eq!(heartbeat(&broker, version, &beat(&a_id, 9, kept.clone())).await.error_code, FENCED_MEMBER_EPOCH, "v{version}");
        assert_eq!(heartbeat(&broker, version, &beat("nobody", 1, vec![])).await.error_code, UNKNOWN_MEMBER_ID, "v{version}");
        let bad = join_request(&group_id, "t").with_server_assignor(Some(s("sticky")));
        assert_eq!(heartbeat(&broker, version, &bad).await.error_code, UNSUPPORTED_ASSIGNOR, "v{version}");
        let bad = join_request(&group_id, "t").with_subscribed_topic_names(None);
        assert_eq!(heartbeat(&broker, version, &bad).await.error_code, INVALID_REQUEST, "v{version}");

        // Commits and fetches carry member epochs (v9).
        assert_eq!(commit(&broker, 9, &group_id, &a_id, 2, 7).await, 0, "v{version}");
        assert_eq!(commit(&broker, 9, &group_id, &a_id, 1, 8).await, STALE_MEMBER_EPOCH, "v{version}");
        assert_eq!(commit(&broker, 9, &group_id, "nobody", 2, 8).await, UNKNOWN_MEMBER_ID, "v{version}");
        assert_eq!(commit(&broker, 8, &group_id, &a_id, 2, 8).await, UNSUPPORTED_VERSION, "v{version}: v8 has generations, not epochs");
        assert_eq!(fetch(&broker, &group_id, Some((&a_id, 2))).await, (0, 7), "v{version}");
        assert_eq!(fetch(&broker, &group_id, Some((&a_id, 1))).await.0, STALE_MEMBER_EPOCH, "v{version}");
        assert_eq!(fetch(&broker, &group_id, None).await, (0, 7), "v{version}: an admin fetch");

        // One protocol per group id.
        let classic = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&group_id)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("range"))]);
        let refused: JoinGroupResponse = call(&broker, ApiKey::JoinGroup, 5, &classic).await;
        assert_eq!(refused.error_code, INCONSISTENT_GROUP_PROTOCOL, "v{version}");

        // Leave: epoch -1 answered with -1; the other member gets all four.
        let left = heartbeat(&broker, version, &beat(&a_id, -1, vec![])).await;
        assert_eq!((left.error_code, left.member_epoch), (0, -1), "v{version}");
        let b3 = heartbeat(&broker, version, &beat(&b_id, 2, got.clone())).await;
        let b_all = b3.assignment.expect("more partitions").topic_partitions[0].partitions.clone();
        assert_eq!(b_all, vec![0, 1, 2, 3], "v{version}");
    }

    // ListGroups names the KIP-848 group with its own protocol type and state.
    let listed: ListGroupsResponse = call(&broker, ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
    let group = listed.groups.iter().find(|g| g.group_id.0.as_str() == "hb-v0").expect("listed");
    assert_eq!((group.protocol_type.as_str(), group.group_state.as_str()), ("consumer", "Stable"));

    for version in versions(ApiKey::ConsumerGroupDescribe) {
        let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("hb-v0")), GroupId(s("no-such-group"))]).with_include_authorized_operations(true);
        let response: ConsumerGroupDescribeResponse = call(&broker, ApiKey::ConsumerGroupDescribe, version, &request).await;
        let group = &response.groups[0];
        assert_eq!(group.error_code, 0, "v{version}: {group:?}");
        assert_eq!((group.group_state.as_str(), group.assignor_name.as_str(), group.members.len()), ("Stable", "uniform", 1), "v{version}: {group:?}");
        assert_eq!(group.group_epoch, group.assignment_epoch, "v{version}");
        let member = &group.members[0];
        assert_eq!(member.assignment.topic_partitions[0].topic_name.0.as_str(), "t", "v{version}");
        assert_eq!(member.assignment.topic_partitions[0].partitions, vec![0, 1, 2, 3], "v{version}");
        assert_eq!(member.target_assignment, member.assignment, "v{version}");
        assert_eq!(response.groups[1].error_code, GROUP_ID_NOT_FOUND, "v{version}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_classic_group_is_not_a_consumer_group() {
    let dir = temp_dir("consumer-groups-classic");
    let broker = open(&dir);
    let classic = JoinGroupRequest::default()
        .with_group_id(GroupId(s("classic")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("range"))]);
    let joined: JoinGroupResponse = call(&broker, ApiKey::JoinGroup, 3, &classic).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(heartbeat(&broker, 0, &join_request("classic", "t")).await.error_code, GROUP_ID_NOT_FOUND);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn commits_survive_a_restart_and_members_rejoin() {
    let dir = temp_dir("consumer-groups-restart");
    let broker = open(&dir);
    assert_eq!(create_topic(&broker, "t", 2).await, 0);
    let a = heartbeat(&broker, 0, &join_request("resume", "t")).await;
    let a_id = a.member_id.unwrap().as_str().to_string();
    assert_eq!(commit(&broker, 9, "resume", &a_id, a.member_epoch, 42).await, 0);
    broker.shutdown();
    drop(broker);

    let broker = open(&dir);
    assert_eq!(fetch(&broker, "resume", None).await, (0, 42), "the commit, read back from the log");
    let beat = ConsumerGroupHeartbeatRequest::default().with_group_id(GroupId(s("resume"))).with_member_id(s(&a_id)).with_member_epoch(a.member_epoch).with_rebalance_timeout_ms(-1);
    assert_eq!(heartbeat(&broker, 0, &beat).await.error_code, UNKNOWN_MEMBER_ID, "membership is in memory only: the member rejoins");
    let again = heartbeat(&broker, 0, &join_request("resume", "t")).await;
    assert_eq!(again.error_code, 0);
    assert_eq!(commit(&broker, 9, "resume", again.member_id.unwrap().as_str(), again.member_epoch, 43).await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
