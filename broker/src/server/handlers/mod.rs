//! One handler per API, a file each. Each takes a decoded request and returns the
//! encoded response; errors inside a request become Kafka error codes in the
//! response, per topic or partition, never a closed connection.

use bytes::Bytes;
use kafka_protocol::messages::{api_versions_response::ApiVersion, ApiKey, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::ResponseError;

use super::Broker;
use crate::wire::{encode_response, DecodeError, Request, SUPPORTED_APIS};

mod admin;
mod consumer_groups;
mod describe_configs;
mod fetch;
mod find_coordinator;
mod group_admin;
mod group_membership;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod offsets;
mod produce;
mod transactions;
pub(crate) mod write_txn_markers;
mod txn_offset_commit;

use admin::{create_partitions, create_topics, delete_records, delete_topics};
pub(super) use admin::create_topic;
pub(super) use admin::{check_partition_growth, delete_targets, deletion_result, partitions_result};
use fetch::fetch;
use list_offsets::list_offsets;
use metadata::metadata;
use produce::produce;

/// The cluster id reported in Metadata.
pub const CLUSTER_ID: &str = "dlog-cluster";
/// Isolation level `read_committed` in Fetch and ListOffsets.
const READ_COMMITTED: i8 = 1;

fn encode<R: Encodable>(api: ApiKey, header: &RequestHeader, body: &R) -> Result<Option<Bytes>, DecodeError> {
    encode_response(api, header.request_api_version, header.correlation_id, body)
        .map(Some)
        .map_err(|e| DecodeError::Malformed(format!("{api:?} v{} response did not encode: {e}", header.request_api_version)))
}

/// Dispatches a decoded request to its handler.
pub async fn handle(broker: &Broker, header: &RequestHeader, request: Request) -> Result<Option<Bytes>, DecodeError> {
    match request {
        Request::ApiVersions(_) => encode(ApiKey::ApiVersions, header, &api_versions_body(0)),
        Request::Metadata(request) => {
            let response = match &broker.cluster {
                Some(link) => super::cluster_handlers::metadata(broker, link, header, request).await,
                None => metadata(broker, header, request),
            };
            encode(ApiKey::Metadata, header, &response)
        }
        Request::CreateTopics(request) => {
            let response = match &broker.cluster {
                Some(link) => super::cluster_handlers::create_topics(broker, link, request).await,
                None => create_topics(broker, request),
            };
            encode(ApiKey::CreateTopics, header, &response)
        }
        Request::Produce(request) => {
            let acks = request.acks;
            let response = produce(broker, request).await;
            if acks == 0 {
                Ok(None)
            } else {
                encode(ApiKey::Produce, header, &response)
            }
        }
        Request::Fetch(request) => {
            let response = fetch(broker, header.request_api_version, request).await;
            encode(ApiKey::Fetch, header, &response)
        }
        Request::ListOffsets(request) => encode(
            ApiKey::ListOffsets,
            header,
            &list_offsets(broker, header.request_api_version, request),
        ),
        Request::OffsetForLeaderEpoch(request) => encode(
            ApiKey::OffsetForLeaderEpoch,
            header,
            &offset_for_leader_epoch::offset_for_leader_epoch(broker, request),
        ),
        Request::DescribeConfigs(request) => encode(
            ApiKey::DescribeConfigs,
            header,
            &describe_configs::describe_configs(broker, header.request_api_version, request),
        ),
        Request::CreatePartitions(request) => {
            let response = match &broker.cluster {
                Some(link) => super::cluster_handlers::create_partitions(link, request).await,
                None => create_partitions(broker, request),
            };
            encode(ApiKey::CreatePartitions, header, &response)
        }
        Request::InitProducerId(request) => {
            let response = init_producer_id::init_producer_id(broker, header, request).await;
            encode(ApiKey::InitProducerId, header, &response)
        }
        Request::AddPartitionsToTxn(request) => {
            let response = transactions::add_partitions_to_txn(broker, header, request).await;
            encode(ApiKey::AddPartitionsToTxn, header, &response)
        }
        Request::AddOffsetsToTxn(request) => {
            let response = transactions::add_offsets_to_txn(broker, header, request).await;
            encode(ApiKey::AddOffsetsToTxn, header, &response)
        }
        Request::ListTransactions(request) => encode(ApiKey::ListTransactions, header, &transactions::list_transactions(broker, request)),
        Request::DescribeTransactions(request) => {
            encode(ApiKey::DescribeTransactions, header, &transactions::describe_transactions(broker, request))
        }
        Request::EndTxn(request) => {
            let response = transactions::end_txn(broker, header, request).await;
            encode(ApiKey::EndTxn, header, &response)
        }
        Request::DeleteRecords(request) => encode(ApiKey::DeleteRecords, header, &delete_records(broker, request)),
        Request::DeleteTopics(request) => {
            let response = match &broker.cluster {
                Some(link) => super::cluster_handlers::delete_topics(broker, link, request).await,
                None => delete_topics(broker, request),
            };
            encode(ApiKey::DeleteTopics, header, &response)
        }
        Request::FindCoordinator(request) => {
            let response = find_coordinator::find_coordinator(broker, header, request).await;
            encode(ApiKey::FindCoordinator, header, &response)
        }
        Request::JoinGroup(request) => {
            let response = group_membership::join_group(broker, header, request).await;
            encode(ApiKey::JoinGroup, header, &response)
        }
        Request::SyncGroup(request) => {
            let response = group_membership::sync_group(broker, header, request).await;
            encode(ApiKey::SyncGroup, header, &response)
        }
        Request::Heartbeat(request) => encode(ApiKey::Heartbeat, header, &group_membership::heartbeat(broker, request)),
        Request::LeaveGroup(request) => encode(ApiKey::LeaveGroup, header, &group_membership::leave_group(broker, header, request)),
        Request::OffsetCommit(request) => {
            let response = offsets::offset_commit(broker, header, request).await;
            encode(ApiKey::OffsetCommit, header, &response)
        }
        Request::OffsetFetch(request) => encode(ApiKey::OffsetFetch, header, &offsets::offset_fetch(broker, header, request)),
        Request::OffsetDelete(request) => {
            let response = offsets::offset_delete(broker, request).await;
            encode(ApiKey::OffsetDelete, header, &response)
        }
        Request::ListGroups(request) => encode(ApiKey::ListGroups, header, &group_admin::list_groups(broker, request)),
        Request::DescribeGroups(request) => encode(ApiKey::DescribeGroups, header, &group_admin::describe_groups(broker, header, request)),
        Request::ConsumerGroupHeartbeat(request) => {
            let response = consumer_groups::consumer_group_heartbeat(broker, header, request).await;
            encode(ApiKey::ConsumerGroupHeartbeat, header, &response)
        }
        Request::ConsumerGroupDescribe(request) => {
            encode(ApiKey::ConsumerGroupDescribe, header, &consumer_groups::consumer_group_describe(broker, header, request))
        }
        Request::TxnOffsetCommit(request) => {
            let response = txn_offset_commit::txn_offset_commit(broker, header, request).await;
            encode(ApiKey::TxnOffsetCommit, header, &response)
        }
        Request::DeleteGroups(request) => {
            let response = group_admin::delete_groups(broker, request).await;
            encode(ApiKey::DeleteGroups, header, &response)
        }
        Request::WriteTxnMarkers(request) => {
            let response = write_txn_markers::write_txn_markers(broker, request).await;
            encode(ApiKey::WriteTxnMarkers, header, &response)
        }
    }
}

fn api_versions_body(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(
        SUPPORTED_APIS
            .iter()
            .map(|&(api, min, max)| {
                ApiVersion::default()
                    .with_api_key(api as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
    )
}

/// The answer to an ApiVersions request at a version we do not speak:
/// UNSUPPORTED_VERSION and our table, in v0 so any client can read it.
pub fn api_versions_unsupported(correlation_id: i32) -> Bytes {
    let body = api_versions_body(ResponseError::UnsupportedVersion.code());
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &body).unwrap_or_default()
}
