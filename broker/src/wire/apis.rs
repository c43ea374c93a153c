//! The APIs this broker implements and the version range of each: the one
//! table ApiVersions advertises and the request decoder enforces.
//!
//! A version is listed only when every field it carries is honoured:
//! Fetch stops at v12 because v13 names topics by id only; Produce stops at
//! v9 for the same reason (v13) and because v10+ adds leader hints we do
//! not send yet. DeleteTopics v6 may name a topic by id instead of by
//! name; only names are honoured, and an id-only entry is answered with
//! UNKNOWN_TOPIC_ID (our topic ids are not Kafka UUIDs, and Metadata does
//! not hand any out). InitProducerId stops at v4, the highest kafka-python
//! 3.x and librdkafka 2.x send; v5 adds only an error code of
//! transactions (KIP-890), which are not implemented (see
//! `server/handlers/init_producer_id.rs`).
//!
//! Group APIs: OffsetCommit v9 and OffsetFetch v9 carry KIP-848 member
//! epochs (checked against the member's epoch); OffsetCommit v10 and
//! OffsetFetch v10 name topics by id only, so they are not listed.
//! ConsumerGroupHeartbeat v1 adds a subscription regex (honoured, matched
//! in full) and ConsumerGroupDescribe v1 a member type (honoured).
//! FindCoordinator v5 adds a transactions error and v6 share groups,
//! ListGroups v5 group types and DescribeGroups v6 an error message per
//! group; none of which is implemented yet. TxnOffsetCommit stops at v3:
//! v4 and v5 belong to KIP-890's server-side verification, which lives
//! with the transaction coordinator.

use kafka_protocol::messages::ApiKey;

/// `(api, min_version, max_version)` for every implemented API.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // v0 is not in the codec (it was removed from Kafka's schema).
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
];

/// The supported version range of `api`, if implemented.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{
        ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest, FetchRequest, ListOffsetsRequest,
        DescribeConfigsRequest, InitProducerIdRequest, MetadataRequest, OffsetForLeaderEpochRequest, ProduceRequest,
        DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
        OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
        WriteTxnMarkersRequest,
        AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest,
        TxnOffsetCommitRequest,
        ListTransactionsRequest, DescribeTransactionsRequest,
    };
    use kafka_protocol::protocol::Message;

    /// Advertising a version the codec cannot decode would break clients.
    #[test]
    fn advertised_versions_are_within_what_the_codec_knows() {
        let known = [
            (ApiKey::Produce, ProduceRequest::VERSIONS),
            (ApiKey::Fetch, FetchRequest::VERSIONS),
            (ApiKey::ListOffsets, ListOffsetsRequest::VERSIONS),
            (ApiKey::Metadata, MetadataRequest::VERSIONS),
            (ApiKey::ApiVersions, ApiVersionsRequest::VERSIONS),
            (ApiKey::CreateTopics, CreateTopicsRequest::VERSIONS),
            (ApiKey::DeleteRecords, DeleteRecordsRequest::VERSIONS),
            (ApiKey::DeleteTopics, DeleteTopicsRequest::VERSIONS),
            (ApiKey::OffsetForLeaderEpoch, OffsetForLeaderEpochRequest::VERSIONS),
            (ApiKey::DescribeConfigs, DescribeConfigsRequest::VERSIONS),
            (ApiKey::CreatePartitions, CreatePartitionsRequest::VERSIONS),
            (ApiKey::InitProducerId, InitProducerIdRequest::VERSIONS),
            (ApiKey::FindCoordinator, FindCoordinatorRequest::VERSIONS),
            (ApiKey::JoinGroup, JoinGroupRequest::VERSIONS),
            (ApiKey::SyncGroup, SyncGroupRequest::VERSIONS),
            (ApiKey::Heartbeat, HeartbeatRequest::VERSIONS),
            (ApiKey::LeaveGroup, LeaveGroupRequest::VERSIONS),
            (ApiKey::OffsetCommit, OffsetCommitRequest::VERSIONS),
            (ApiKey::OffsetFetch, OffsetFetchRequest::VERSIONS),
            (ApiKey::OffsetDelete, OffsetDeleteRequest::VERSIONS),
            (ApiKey::WriteTxnMarkers, WriteTxnMarkersRequest::VERSIONS),
            (ApiKey::ListGroups, ListGroupsRequest::VERSIONS),
            (ApiKey::DescribeGroups, DescribeGroupsRequest::VERSIONS),
            (ApiKey::DeleteGroups, DeleteGroupsRequest::VERSIONS),
            (ApiKey::ConsumerGroupHeartbeat, ConsumerGroupHeartbeatRequest::VERSIONS),
            (ApiKey::ConsumerGroupDescribe, ConsumerGroupDescribeRequest::VERSIONS),
            (ApiKey::AddPartitionsToTxn, AddPartitionsToTxnRequest::VERSIONS),
            (ApiKey::AddOffsetsToTxn, AddOffsetsToTxnRequest::VERSIONS),
            (ApiKey::EndTxn, EndTxnRequest::VERSIONS),
            (ApiKey::TxnOffsetCommit, TxnOffsetCommitRequest::VERSIONS),
            (ApiKey::ListTransactions, ListTransactionsRequest::VERSIONS),
            (ApiKey::DescribeTransactions, DescribeTransactionsRequest::VERSIONS),
        ];
        for (api, min, max) in SUPPORTED_APIS {
            let range = known.iter().find(|(k, _)| k == api).expect("listed").1;
            assert!(range.min <= *min && *max <= range.max, "{api:?} {min}..={max} vs {range}");
        }
    }
}
