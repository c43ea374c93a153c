//! Decoding requests from untrusted bytes, and encoding responses.
//!
//! Request frame payload: a request header (its version depends on the API
//! key and version, per the Kafka schema) followed by the body. Response
//! payload: a response header (correlation id, plus tagged fields for
//! flexible versions, except ApiVersions which always uses header v0) and
//! the body. All integers are big-endian, as everywhere in Kafka.
//!
//! Decoding never panics: lengths are checked first, and the generated
//! decoders run under `catch_unwind` as a last line of defence, so a
//! malformed request becomes a [`DecodeError`] and the connection closes.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, RequestHeader,
    ResponseHeader, SyncGroupRequest, WriteTxnMarkersRequest, AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, TxnOffsetCommitRequest,
    ListTransactionsRequest, DescribeTransactionsRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::apis::supported_range;

/// A decoded request body.
#[derive(Debug, Clone)]
pub enum Request {
    /// Produce.
    Produce(ProduceRequest),
    /// Fetch.
    Fetch(FetchRequest),
    /// ListOffsets.
    ListOffsets(ListOffsetsRequest),
    /// Metadata.
    Metadata(MetadataRequest),
    /// ApiVersions.
    ApiVersions(ApiVersionsRequest),
    /// CreateTopics.
    CreateTopics(CreateTopicsRequest),
    /// DeleteRecords.
    DeleteRecords(DeleteRecordsRequest),
    /// DeleteTopics.
    DeleteTopics(DeleteTopicsRequest),
    /// OffsetForLeaderEpoch.
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    /// DescribeConfigs.
    DescribeConfigs(DescribeConfigsRequest),
    /// CreatePartitions.
    CreatePartitions(CreatePartitionsRequest),
    /// InitProducerId.
    InitProducerId(InitProducerIdRequest),
    /// FindCoordinator.
    FindCoordinator(FindCoordinatorRequest),
    /// JoinGroup.
    JoinGroup(JoinGroupRequest),
    /// SyncGroup.
    SyncGroup(SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupRequest),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitRequest),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchRequest),
    /// OffsetDelete.
    OffsetDelete(OffsetDeleteRequest),
    /// ListGroups.
    ListGroups(ListGroupsRequest),
    /// DescribeGroups.
    DescribeGroups(DescribeGroupsRequest),
    /// DeleteGroups.
    DeleteGroups(DeleteGroupsRequest),
    /// ConsumerGroupHeartbeat (KIP-848).
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
    /// ConsumerGroupDescribe (KIP-848).
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
    /// WriteTxnMarkers (from a transaction coordinator).
    WriteTxnMarkers(WriteTxnMarkersRequest),
    /// AddPartitionsToTxn.
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    /// AddOffsetsToTxn.
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    /// EndTxn.
    EndTxn(EndTxnRequest),
    /// TxnOffsetCommit.
    TxnOffsetCommit(TxnOffsetCommitRequest),
    /// ListTransactions.
    ListTransactions(ListTransactionsRequest),
    /// DescribeTransactions.
    DescribeTransactions(DescribeTransactionsRequest),
}

/// Why a request frame could not be decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Too short to hold an API key and version.
    #[error("request of {0} bytes is too short for a header")]
    TooShort(usize),
    /// The API key is not one we implement (or not a Kafka API at all).
    #[error("unsupported API key {0}")]
    UnsupportedApi(i16),
    /// A known API at a version outside our range. ApiVersions answers
    /// this with UNSUPPORTED_VERSION; other APIs close the connection.
    #[error("unsupported version {version} of API key {api_key}")]
    UnsupportedVersion {
        /// The API key.
        api_key: i16,
        /// The requested version.
        version: i16,
        /// The correlation id, so ApiVersions can still answer.
        correlation_id: i32,
    },
    /// The header or body did not decode.
    #[error("malformed request: {0}")]
    Malformed(String),
}

fn guarded<T>(decode: impl FnOnce() -> anyhow::Result<T>) -> Result<T, DecodeError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(DecodeError::Malformed(error.to_string())),
        Err(_) => Err(DecodeError::Malformed("decoder panicked".into())),
    }
}

/// Decodes a request frame's payload into its header and body.
pub fn decode_request(payload: &Bytes) -> Result<(RequestHeader, Request), DecodeError> {
    if payload.len() < 8 {
        return Err(DecodeError::TooShort(payload.len()));
    }
    let api_key = i16::from_be_bytes([payload[0], payload[1]]);
    let version = i16::from_be_bytes([payload[2], payload[3]]);
    let correlation_id = i32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
    let api = ApiKey::try_from(api_key).map_err(|_| DecodeError::UnsupportedApi(api_key))?;
    let (min, max) = supported_range(api).ok_or(DecodeError::UnsupportedApi(api_key))?;
    if version < min || version > max {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let mut buf = payload.clone();
    let header = guarded(|| RequestHeader::decode(&mut buf, api.request_header_version(version)))?;
    let request = guarded(|| {
        Ok(match api {
            ApiKey::Produce => Request::Produce(ProduceRequest::decode(&mut buf, version)?),
            ApiKey::Fetch => Request::Fetch(FetchRequest::decode(&mut buf, version)?),
            ApiKey::ListOffsets => Request::ListOffsets(ListOffsetsRequest::decode(&mut buf, version)?),
            ApiKey::Metadata => Request::Metadata(MetadataRequest::decode(&mut buf, version)?),
            ApiKey::ApiVersions => Request::ApiVersions(ApiVersionsRequest::decode(&mut buf, version)?),
            ApiKey::CreateTopics => Request::CreateTopics(CreateTopicsRequest::decode(&mut buf, version)?),
            ApiKey::DeleteRecords => Request::DeleteRecords(DeleteRecordsRequest::decode(&mut buf, version)?),
            ApiKey::DeleteTopics => Request::DeleteTopics(DeleteTopicsRequest::decode(&mut buf, version)?),
            ApiKey::OffsetForLeaderEpoch => Request::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::decode(&mut buf, version)?),
            ApiKey::DescribeConfigs => Request::DescribeConfigs(DescribeConfigsRequest::decode(&mut buf, version)?),
            ApiKey::CreatePartitions => Request::CreatePartitions(CreatePartitionsRequest::decode(&mut buf, version)?),
            ApiKey::InitProducerId => Request::InitProducerId(InitProducerIdRequest::decode(&mut buf, version)?),
            ApiKey::FindCoordinator => Request::FindCoordinator(FindCoordinatorRequest::decode(&mut buf, version)?),
            ApiKey::JoinGroup => Request::JoinGroup(JoinGroupRequest::decode(&mut buf, version)?),
            ApiKey::SyncGroup => Request::SyncGroup(SyncGroupRequest::decode(&mut buf, version)?),
            ApiKey::Heartbeat => Request::Heartbeat(HeartbeatRequest::decode(&mut buf, version)?),
            ApiKey::LeaveGroup => Request::LeaveGroup(LeaveGroupRequest::decode(&mut buf, version)?),
            ApiKey::OffsetCommit => Request::OffsetCommit(OffsetCommitRequest::decode(&mut buf, version)?),
            ApiKey::OffsetFetch => Request::OffsetFetch(OffsetFetchRequest::decode(&mut buf, version)?),
            ApiKey::OffsetDelete => Request::OffsetDelete(OffsetDeleteRequest::decode(&mut buf, version)?),
            ApiKey::ListGroups => Request::ListGroups(ListGroupsRequest::decode(&mut buf, version)?),
            ApiKey::DescribeGroups => Request::DescribeGroups(DescribeGroupsRequest::decode(&mut buf, version)?),
            ApiKey::DeleteGroups => Request::DeleteGroups(DeleteGroupsRequest::decode(&mut buf, version)?),
            ApiKey::ConsumerGroupHeartbeat => Request::ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest::decode(&mut buf, version)?),
            ApiKey::ConsumerGroupDescribe => Request::ConsumerGroupDescribe(ConsumerGroupDescribeRequest::decode(&mut buf, version)?),
            ApiKey::WriteTxnMarkers => Request::WriteTxnMarkers(WriteTxnMarkersRequest::decode(&mut buf, version)?),
            ApiKey::AddPartitionsToTxn => Request::AddPartitionsToTxn(AddPartitionsToTxnRequest::decode(&mut buf, version)?),
            ApiKey::AddOffsetsToTxn => Request::AddOffsetsToTxn(AddOffsetsToTxnRequest::decode(&mut buf, version)?),
            ApiKey::EndTxn => Request::EndTxn(EndTxnRequest::decode(&mut buf, version)?),
            ApiKey::TxnOffsetCommit => Request::TxnOffsetCommit(TxnOffsetCommitRequest::decode(&mut buf, version)?),
            ApiKey::ListTransactions => Request::ListTransactions(ListTransactionsRequest::decode(&mut buf, version)?),
            ApiKey::DescribeTransactions => Request::DescribeTransactions(DescribeTransactionsRequest::decode(&mut buf, version)?),
            _ => anyhow::bail!("unreachable: {api:?} passed the support table"),
        })
    })?;
    Ok((header, request))
}

/// Encodes a response (header + body) for `api` at `version`.
pub fn encode_response<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, api.response_header_version(version))?;
    body.encode(&mut buf, version)?;
    Ok(buf.freeze())
}

/// Encodes a request (header + body); used by our client.
pub fn encode_request<R: Encodable>(header: &RequestHeader, body: &R) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    let api = ApiKey::try_from(header.request_api_key)
        .map_err(|_| anyhow::anyhow!("unknown api key {}", header.request_api_key))?;
    header.encode(&mut buf, api.request_header_version(header.request_api_version))?;
    body.encode(&mut buf, header.request_api_version)?;
    Ok(buf.freeze())
}

/// Decodes a response's header and body; used by our client.
pub fn decode_response<R: Decodable>(api: ApiKey, version: i16, payload: &Bytes) -> Result<(i32, R), DecodeError> {
    let mut buf = payload.clone();
    let header = guarded(|| ResponseHeader::decode(&mut buf, api.response_header_version(version)))?;
    let body = guarded(|| R::decode(&mut buf, version))?;
    Ok((header.correlation_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes arrive, decoding returns, it never panics.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&Bytes::from(bytes));
        }

        /// Valid headers for our APIs followed by garbage bodies never panic.
        #[test]
        fn garbage_bodies_never_panic(api in 0usize..crate::wire::SUPPORTED_APIS.len(), version in 0i16..14, body in proptest::collection::vec(any::<u8>(), 0..128)) {
            let (key, _, _) = crate::wire::SUPPORTED_APIS[api];
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&(key as i16).to_be_bytes());
            bytes.extend_from_slice(&version.to_be_bytes());
            bytes.extend_from_slice(&7i32.to_be_bytes());
            bytes.extend_from_slice(&body);
            let _ = decode_request(&Bytes::from(bytes));
        }
    }

    #[test]
    fn unsupported_version_keeps_the_correlation_id() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
        bytes.extend_from_slice(&99i16.to_be_bytes());
        bytes.extend_from_slice(&42i32.to_be_bytes());
        let error = decode_request(&Bytes::from(bytes)).unwrap_err();
        assert_eq!(
            error,
            DecodeError::UnsupportedVersion { api_key: 18, version: 99, correlation_id: 42 }
        );
    }
}
