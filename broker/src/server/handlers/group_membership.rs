//! JoinGroup (v0–9), SyncGroup (v0–5), Heartbeat (v0–4) and LeaveGroup
//! (v0–5): decode, call the group coordinator core, encode. JoinGroup and
//! SyncGroup may wait for the rest of the group (see `server::groups`).
//!
//! Version notes: JoinGroup v0 has no rebalance timeout (Kafka uses the
//! session timeout); from v4 a first join without a member id gets
//! MEMBER_ID_REQUIRED and an id to rejoin with (KIP-394); v5 adds static
//! members; v7 the protocol type in the answer. LeaveGroup v0–2 name one
//! member, v3+ a batch (each with its own error code).

use bytes::Bytes;
use kafka_protocol::messages::{
    join_group_response::JoinGroupResponseMember, leave_group_response::MemberResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, RequestHeader, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::error_codes::KafkaErrorCode;
use crate::group::{GroupError, JoinRequest, JoinResponse, LeavingMember, Protocol, SyncRequest, SyncResponse};
use crate::server::groups::Delayed;
use crate::server::Broker;

fn text(value: &StrBytes) -> String {
    value.as_str().to_string()
}

fn owned(value: Option<String>) -> Option<StrBytes> {
    value.map(StrBytes::from_string)
}

fn error_code(error: Option<GroupError>) -> i16 {
    error.map_or(0, |e| e.kafka_error_code())
}

pub(super) async fn join_group(broker: &Broker, header: &RequestHeader, request: JoinGroupRequest) -> JoinGroupResponse {
    let version = header.request_api_version;
    let group_id = text(&request.group_id.0);
    let member_id = text(&request.member_id);
    let join = JoinRequest {
        group_id: group_id.clone(),
        member_id: member_id.clone(),
        group_instance_id: request.group_instance_id.as_ref().map(text),
        client_id: header.client_id.as_ref().map(text).unwrap_or_default(),
        client_host: String::new(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version == 0 { request.session_timeout_ms } else { request.rebalance_timeout_ms },
        protocol_type: text(&request.protocol_type),
        protocols: request.protocols.iter().map(|p| Protocol { name: text(&p.name), metadata: p.metadata.clone() }).collect(),
        require_known_member_id: version >= 4,
    };
    let response = broker
        .group_reply(
            &group_id,
            |core, now_ms, waiter| core.join(now_ms, waiter, join),
            |delayed| match delayed {
                Delayed::Join(response) => Some(response),
                Delayed::Sync(_) => None,
            },
            |error| JoinResponse::error(error, &member_id),
        )
        .await;
    let members = response
        .members
        .into_iter()
        .map(|m| JoinGroupResponseMember::default().with_member_id(StrBytes::from_string(m.member_id)).with_group_instance_id(owned(m.group_instance_id)).with_metadata(m.metadata))
        .collect();
    JoinGroupResponse::default()
        .with_error_code(error_code(response.error))
        .with_generation_id(response.generation_id)
        .with_protocol_type(if version >= 7 { owned(response.protocol_type) } else { None })
        // Before v7 the protocol name is not nullable.
        .with_protocol_name(if version >= 7 { owned(response.protocol_name) } else { Some(StrBytes::from_string(response.protocol_name.unwrap_or_default())) })
        .with_leader(StrBytes::from_string(response.leader))
        .with_member_id(StrBytes::from_string(response.member_id))
        .with_members(members)
}

pub(super) async fn sync_group(broker: &Broker, header: &RequestHeader, request: SyncGroupRequest) -> SyncGroupResponse {
    let version = header.request_api_version;
    let group_id = text(&request.group_id.0);
    let sync = SyncRequest {
        group_id: group_id.clone(),
        generation_id: request.generation_id,
        member_id: text(&request.member_id),
        group_instance_id: request.group_instance_id.as_ref().map(text),
        protocol_type: request.protocol_type.as_ref().map(text),
        protocol_name: request.protocol_name.as_ref().map(text),
        assignments: request.assignments.iter().map(|a| (text(&a.member_id), a.assignment.clone())).collect(),
    };
    let response = broker
        .group_reply(
            &group_id,
            |core, now_ms, waiter| core.sync(now_ms, waiter, sync),
            |delayed| match delayed {
                Delayed::Sync(response) => Some(response),
                Delayed::Join(_) => None,
            },
            SyncResponse::error,
        )
        .await;
    let body = SyncGroupResponse::default().with_error_code(error_code(response.error)).with_assignment(if response.error.is_some() { Bytes::new() } else { response.assignment });
    if version >= 5 {
        body.with_protocol_type(owned(response.protocol_type)).with_protocol_name(owned(response.protocol_name))
    } else {
        body
    }
}

pub(super) fn heartbeat(broker: &Broker, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = text(&request.group_id.0);
    let member_id = text(&request.member_id);
    let instance = request.group_instance_id.as_ref().map(text);
    let result = broker
        .with_group_coordinator(Some(&group_id), |core, now_ms| core.heartbeat(now_ms, &group_id, &member_id, instance.as_deref(), request.generation_id))
        .and_then(|r| r);
    HeartbeatResponse::default().with_error_code(error_code(result.err()))
}

pub(super) fn leave_group(broker: &Broker, header: &RequestHeader, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let batched = header.request_api_version >= 3;
    let group_id = text(&request.group_id.0);
    let leaving: Vec<LeavingMember> = if batched {
        request.members.iter().map(|m| LeavingMember { member_id: text(&m.member_id), group_instance_id: m.group_instance_id.as_ref().map(text) }).collect()
    } else {
        vec![LeavingMember { member_id: text(&request.member_id), group_instance_id: None }]
    };
    let result = broker.with_group_coordinator(Some(&group_id), |core, now_ms| core.leave(now_ms, &group_id, &leaving)).and_then(|r| r);
    match result {
        Err(error) => LeaveGroupResponse::default().with_error_code(error.kafka_error_code()),
        Ok(results) if batched => LeaveGroupResponse::default().with_members(
            leaving
                .iter()
                .zip(results)
                .map(|(member, result)| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(member.member_id.clone()))
                        .with_group_instance_id(owned(member.group_instance_id.clone()))
                        .with_error_code(error_code(result.err()))
                })
                .collect(),
        ),
        // One member: its own answer is the request's.
        Ok(results) => LeaveGroupResponse::default().with_error_code(error_code(results.into_iter().next().and_then(|r| r.err()))),
    }
}
