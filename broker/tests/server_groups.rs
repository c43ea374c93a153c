//! The group APIs through the broker's frame handler, standalone: every
//! version advertised of FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete, ListGroups,
//! DescribeGroups and DeleteGroups answers with what a client relies on
//! (ids, generations, assignments, offsets, Kafka's error codes), and
//! committed offsets and generations survive a broker restart.

mod common;


use broker::server::Broker;
use bytes::Bytes;
use common::{advertised_versions as versions, call, fresh_dir as temp_dir, open_group_broker as open, str_bytes as s};
use kafka_protocol::messages::{
    join_group_request::JoinGroupRequestProtocol, leave_group_request::MemberIdentity, offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic}, offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics},
    sync_group_request::SyncGroupRequestAssignment, ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};

const MEMBER_ID_REQUIRED: i16 = 79;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const NON_EMPTY_GROUP: i16 = 68;




fn group(id: &str) -> GroupId {
    GroupId(s(id))
}


async fn join(broker: &Broker, version: i16, group_id: &str, member_id: &str) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(b"subscription"))]);
    call(broker, ApiKey::JoinGroup, version, &request).await
}

/// A member of a new one-member group at generation 1, synced with
/// `assignment`: (member id, generation).
async fn stable_member(broker: &Broker, group_id: &str) -> (String, i32) {
    let required = join(broker, 5, group_id, "").await;
    assert_eq!(required.error_code, MEMBER_ID_REQUIRED);
    let joined = join(broker, 5, group_id, required.member_id.as_str()).await;
    assert_eq!(joined.error_code, 0);
    let member_id = joined.member_id.as_str().to_string();
    let synced = sync(broker, 3, group_id, &member_id, joined.generation_id).await;
    assert_eq!(synced.error_code, 0);
    (member_id, joined.generation_id)
}

async fn sync(broker: &Broker, version: i16, group_id: &str, member_id: &str, generation_id: i32) -> SyncGroupResponse {
    let mut request = SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(generation_id)
        .with_member_id(s(member_id))
        .with_assignments(vec![SyncGroupRequestAssignment::default().with_member_id(s(member_id)).with_assignment(Bytes::from_static(b"assignment"))]);
    if version >= 5 {
        request = request.with_protocol_type(Some(s("consumer"))).with_protocol_name(Some(s("range")));
    }
    call(broker, ApiKey::SyncGroup, version, &request).await
}

async fn heartbeat(broker: &Broker, version: i16, group_id: &str, member_id: &str, generation_id: i32) -> i16 {
    let request = HeartbeatRequest::default().with_group_id(group(group_id)).with_generation_id(generation_id).with_member_id(s(member_id));
    let response: HeartbeatResponse = call(broker, ApiKey::Heartbeat, version, &request).await;
    response.error_code
}

async fn commit(broker: &Broker, version: i16, group_id: &str, member_id: &str, generation_id: i32, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(generation_id)
        .with_member_id(s(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset).with_committed_metadata(Some(s("m")))])]);
    let response: OffsetCommitResponse = call(broker, ApiKey::OffsetCommit, version, &request).await;
    assert_eq!(response.topics[0].name.0.as_str(), "t");
    response.topics[0].partitions[0].error_code
}

/// Committed offsets of partitions 0 and 1 of topic `t` (-1: none).
async fn fetch(broker: &Broker, version: i16, group_id: &str) -> Vec<i64> {
    let partitions = vec![0, 1];
    let request = if version >= 8 {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(group(group_id))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default().with_name(TopicName(s("t"))).with_partition_indexes(partitions)]))])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(group(group_id))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default().with_name(TopicName(s("t"))).with_partition_indexes(partitions)]))
    };
    let response: OffsetFetchResponse = call(broker, ApiKey::OffsetFetch, version, &request).await;
    if version >= 8 {
        let answer = &response.groups[0];
        assert_eq!(answer.error_code, 0);
        answer.topics[0].partitions.iter().map(|p| p.committed_offset).collect()
    } else {
        assert_eq!(response.error_code, 0);
        response.topics[0].partitions.iter().map(|p| {
            assert_eq!(p.error_code, 0);
            p.committed_offset
        }).collect()
    }
}

#[tokio::test]
async fn every_group_api_version_answers() {
    let dir = temp_dir("groups-versions");
    let broker = open(&dir);

    for version in versions(ApiKey::FindCoordinator) {
        let mut request = FindCoordinatorRequest::default().with_key_type(0);
        if version >= 4 {
            request = request.with_coordinator_keys(vec![s("a"), s("b")]);
        } else {
            request = request.with_key(s("a"));
        }
        let response: FindCoordinatorResponse = call(&broker, ApiKey::FindCoordinator, version, &request).await;
        if version >= 4 {
            assert_eq!(response.coordinators.len(), 2, "v{version}");
            assert!(response.coordinators.iter().all(|c| c.error_code == 0 && c.node_id.0 == 1 && c.port == 9092), "v{version}: {response:?}");
        } else {
            assert_eq!((response.error_code, response.node_id.0, response.port), (0, 1, 9092), "v{version}");
        }
    }

    for version in versions(ApiKey::JoinGroup) {
        let group_id = format!("join-v{version}");
        let mut response = join(&broker, version, &group_id, "").await;
        if version >= 4 {
            assert_eq!(response.error_code, MEMBER_ID_REQUIRED, "v{version}: KIP-394");
            assert!(!response.member_id.is_empty(), "v{version}: an id to rejoin with");
            let member_id = response.member_id.as_str().to_string();
            response = join(&broker, version, &group_id, &member_id).await;
            assert_eq!(response.member_id.as_str(), member_id, "v{version}");
        }
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.generation_id, 1, "v{version}");
        assert_eq!(response.leader, response.member_id, "v{version}: the only member leads");
        assert_eq!(response.protocol_name.as_ref().map(|p| p.as_str()), Some("range"), "v{version}");
        assert_eq!(response.members.len(), 1, "v{version}: the leader gets every subscription");
        assert_eq!(&response.members[0].metadata[..], b"subscription", "v{version}");
    }

    for version in versions(ApiKey::SyncGroup) {
        let group_id = format!("sync-v{version}");
        let joined = join(&broker, 3, &group_id, "").await;
        assert_eq!(joined.error_code, 0);
        let response = sync(&broker, version, &group_id, joined.member_id.as_str(), joined.generation_id).await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(&response.assignment[..], b"assignment", "v{version}");
        let stale = sync(&broker, version, &group_id, joined.member_id.as_str(), joined.generation_id + 1).await;
        assert_eq!(stale.error_code, ILLEGAL_GENERATION, "v{version}");
    }

    for version in versions(ApiKey::Heartbeat) {
        let group_id = format!("heartbeat-v{version}");
        let (member_id, generation) = stable_member(&broker, &group_id).await;
        assert_eq!(heartbeat(&broker, version, &group_id, &member_id, generation).await, 0, "v{version}");
        assert_eq!(heartbeat(&broker, version, &group_id, &member_id, generation + 1).await, ILLEGAL_GENERATION, "v{version}");
        assert_eq!(heartbeat(&broker, version, &group_id, "stranger", generation).await, UNKNOWN_MEMBER_ID, "v{version}");
    }

    for version in versions(ApiKey::LeaveGroup) {
        let group_id = format!("leave-v{version}");
        let (member_id, generation) = stable_member(&broker, &group_id).await;
        let request = if version >= 3 {
            LeaveGroupRequest::default().with_group_id(group(&group_id)).with_members(vec![MemberIdentity::default().with_member_id(s(&member_id))])
        } else {
            LeaveGroupRequest::default().with_group_id(group(&group_id)).with_member_id(s(&member_id))
        };
        let response: LeaveGroupResponse = call(&broker, ApiKey::LeaveGroup, version, &request).await;
        assert_eq!(response.error_code, 0, "v{version}");
        if version >= 3 {
            assert_eq!(response.members[0].error_code, 0, "v{version}");
        }
        assert_eq!(heartbeat(&broker, 4, &group_id, &member_id, generation).await, UNKNOWN_MEMBER_ID, "v{version}: gone");
    }

    for version in versions(ApiKey::OffsetCommit) {
        let group_id = format!("commit-v{version}");
        let (member_id, generation) = stable_member(&broker, &group_id).await;
        assert_eq!(commit(&broker, version, &group_id, &member_id, generation, 42).await, 0, "v{version}");
        assert_eq!(commit(&broker, version, &group_id, &member_id, generation + 1, 7).await, ILLEGAL_GENERATION, "v{version}: another generation is fenced");
        assert_eq!(commit(&broker, version, &group_id, "", -1, 7).await, UNKNOWN_MEMBER_ID, "v{version}: no commits from outside a group with members");
        assert_eq!(fetch(&broker, 8, &group_id).await, vec![42, -1], "v{version}: the fenced commits changed nothing");
    }

    for version in versions(ApiKey::OffsetFetch) {
        let group_id = format!("fetch-v{version}");
        assert_eq!(fetch(&broker, version, &group_id).await, vec![-1, -1], "v{version}: nothing committed yet");
        assert_eq!(commit(&broker, 8, &group_id, "", -1, 9).await, 0, "a commit outside any generation, to an empty group");
        assert_eq!(fetch(&broker, version, &group_id).await, vec![9, -1], "v{version}");
    }

    for version in versions(ApiKey::OffsetDelete) {
        let group_id = format!("offset-delete-v{version}");
        assert_eq!(commit(&broker, 8, &group_id, "", -1, 5).await, 0);
        let request = OffsetDeleteRequest::default()
            .with_group_id(group(&group_id))
            .with_topics(vec![OffsetDeleteRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(0)])]);
        let response: OffsetDeleteResponse = call(&broker, ApiKey::OffsetDelete, version, &request).await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(fetch(&broker, 8, &group_id).await, vec![-1, -1], "v{version}: deleted");
    }

    let (_, _) = stable_member(&broker, "described").await;
    for version in versions(ApiKey::ListGroups) {
        let response: ListGroupsResponse = call(&broker, ApiKey::ListGroups, version, &ListGroupsRequest::default()).await;
        assert_eq!(response.error_code, 0, "v{version}");
        let listed = response.groups.iter().find(|g| g.group_id.0.as_str() == "described").expect("listed");
        assert_eq!(listed.protocol_type.as_str(), "consumer", "v{version}");
        if version >= 4 {
            assert_eq!(listed.group_state.as_str(), "Stable", "v{version}");
        }
    }

    for version in versions(ApiKey::DescribeGroups) {
        let request = DescribeGroupsRequest::default().with_groups(vec![group("described"), group("never-seen")]);
        let response: DescribeGroupsResponse = call(&broker, ApiKey::DescribeGroups, version, &request).await;
        let described = &response.groups[0];
        assert_eq!((described.error_code, described.group_state.as_str(), described.protocol_data.as_str()), (0, "Stable", "range"), "v{version}");
        assert_eq!(described.members.len(), 1, "v{version}");
        assert_eq!(&described.members[0].member_assignment[..], b"assignment", "v{version}");
        assert_eq!(described.members[0].client_id.as_str(), "broker-tests", "v{version}");
        assert_eq!(response.groups[1].group_state.as_str(), "Dead", "v{version}: a group never seen");
    }

    for version in versions(ApiKey::DeleteGroups) {
        let group_id = format!("delete-v{version}");
        assert_eq!(commit(&broker, 8, &group_id, "", -1, 3).await, 0);
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group(&group_id), group("described")]);
        let response: DeleteGroupsResponse = call(&broker, ApiKey::DeleteGroups, version, &request).await;
        assert_eq!(response.results[0].error_code, 0, "v{version}");
        assert_eq!(response.results[1].error_code, NON_EMPTY_GROUP, "v{version}: a group with members stays");
        assert_eq!(fetch(&broker, 8, &group_id).await, vec![-1, -1], "v{version}: its offsets are gone");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a coordinator failover relies on: a broker that reopens replays
/// `__consumer_offsets`, so committed offsets (and deletions) are still
/// there and a member of the last generation keeps its membership.
#[tokio::test]
async fn offsets_and_generations_survive_a_restart() {
    let dir = temp_dir("groups-restart");
    let broker = open(&dir);
    let (member_id, generation) = stable_member(&broker, "survivor").await;
    assert_eq!(commit(&broker, 8, "survivor", &member_id, generation, 11).await, 0);
    assert_eq!(commit(&broker, 8, "survivor", &member_id, generation, 12).await, 0);
    assert_eq!(commit(&broker, 8, "gone", "", -1, 5).await, 0);
    let deleted: DeleteGroupsResponse = call(&broker, ApiKey::DeleteGroups, 2, &DeleteGroupsRequest::default().with_groups_names(vec![group("gone")])).await;
    assert_eq!(deleted.results[0].error_code, 0);
    broker.shutdown();
    drop(broker);

    let broker = open(&dir);
    assert_eq!(fetch(&broker, 8, "survivor").await, vec![12, -1], "the last commit, read back from the log");
    assert_eq!(fetch(&broker, 8, "gone").await, vec![-1, -1], "a deleted group stays deleted");
    assert_eq!(heartbeat(&broker, 4, "survivor", &member_id, generation).await, 0, "the member of the last generation is still one");
    assert_eq!(commit(&broker, 8, "survivor", &member_id, generation + 1, 1).await, ILLEGAL_GENERATION, "and fencing still holds");
    let _ = std::fs::remove_dir_all(&dir);
}
