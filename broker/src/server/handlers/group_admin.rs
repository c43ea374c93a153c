//! ListGroups (v0–4), DescribeGroups (v0–5) and DeleteGroups (v0–2).
//!
//! As in Kafka, each broker lists and describes the groups it coordinates;
//! an admin client asks every broker (ListGroups) or each group's
//! coordinator (DescribeGroups, DeleteGroups). A group never seen is
//! described as Dead with no members. Only empty groups can be deleted
//! (NON_EMPTY_GROUP otherwise); their offsets and metadata get tombstones.

use kafka_protocol::messages::{
    delete_groups_response::DeletableGroupResult,
    describe_groups_response::{DescribedGroup, DescribedGroupMember},
    list_groups_response::ListedGroup,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use crate::error_codes::KafkaErrorCode;
use crate::server::Broker;

/// DescribeGroups v3+ when authorized operations were not asked for.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub(super) fn list_groups(broker: &Broker, request: ListGroupsRequest) -> ListGroupsResponse {
    let listed = match broker.with_group_coordinator(None, |core, _| core.list_groups()) {
        Ok(listed) => listed,
        Err(error) => return ListGroupsResponse::default().with_error_code(error.kafka_error_code()),
    };
    let wanted: Vec<String> = request.states_filter.iter().map(|s| s.as_str().to_ascii_lowercase()).collect();
    let groups = listed
        .into_iter()
        .filter(|(_, _, state)| wanted.is_empty() || wanted.contains(&state.to_ascii_lowercase()))
        .map(|(group_id, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group_id)))
                .with_protocol_type(StrBytes::from_string(protocol_type))
                .with_group_state(StrBytes::from_static_str(state))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(super) fn describe_groups(broker: &Broker, header: &RequestHeader, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|group_id| {
            let id = group_id.0.as_str().to_string();
            let mut answer = DescribedGroup::default().with_group_id(group_id.clone());
            if header.request_api_version >= 3 {
                answer = answer.with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            }
            match broker.with_group_coordinator(Some(&id), |core, _| core.describe_group(&id)).and_then(|r| r) {
                Err(error) => answer.with_error_code(error.kafka_error_code()),
                Ok(description) => answer
                    .with_group_state(StrBytes::from_static_str(description.state.name()))
                    .with_protocol_type(StrBytes::from_string(description.protocol_type))
                    .with_protocol_data(StrBytes::from_string(description.protocol_name))
                    .with_members(
                        description
                            .members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(StrBytes::from_string(m.member_id))
                                    .with_group_instance_id(if header.request_api_version >= 4 { m.group_instance_id.map(StrBytes::from_string) } else { None })
                                    .with_client_id(StrBytes::from_string(m.client_id))
                                    .with_client_host(StrBytes::from_string(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) async fn delete_groups(broker: &Broker, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let id = group_id.0.as_str().to_string();
        let appended = broker
            .with_group_coordinator(Some(&id), |core, _| {
                let records = core.delete_group(&id)?;
                broker.append_offsets_records(core.partition_of(&id), &records, true)
            })
            .and_then(|r| r);
        let result = match appended {
            Ok(wait) => Broker::await_replication(wait).await,
            Err(error) => Err(error),
        };
        results.push(DeletableGroupResult::default().with_group_id(group_id).with_error_code(result.err().map_or(0, |e| e.kafka_error_code())));
    }
    DeleteGroupsResponse::default().with_results(results)
}
