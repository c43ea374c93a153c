//! A member of a consumer group (Kafka's classic protocol): finds the
//! coordinator, joins, assigns partitions when it leads (range assignor),
//! syncs, heartbeats, commits and fetches committed offsets. Fetching the
//! records themselves is the [`super::Consumer`]'s job: the caller assigns
//! it what [`GroupMember::sync`] returns and seeks to the committed offsets.
//!
//! The subscription and assignment are Kafka's consumer protocol
//! (`ConsumerProtocolSubscription` / `ConsumerProtocolAssignment`, each
//! prefixed by its int16 version), so this member can share a group with
//! librdkafka or Java consumers using the same assignor. The member offers
//! the assignors of its `partition.assignment.strategy`
//! ([`GroupMemberConfig::assignors`], most preferred first); the
//! coordinator picks one every member offers, and the leader runs it
//! ([`super::assignors`]).
//!
//! | subscription version | sent when | fields |
//! |----------------------|-----------|--------|
//! | 0 | no cooperative assignor is offered | topics, user data (null) |
//! | 2 | `cooperative-sticky` is offered | topics, user data (null), owned partitions (topic, partitions), generation id |
//!
//! Eager members send version 0 exactly as before cooperative rebalancing
//! existed, so their JoinGroup metadata does not change between
//! generations (a changed subscription would start a rebalance).

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_protocol_assignment::TopicPartition as AssignedPartitions, join_group_request::JoinGroupRequestProtocol, offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::OffsetFetchRequestTopic, sync_group_request::SyncGroupRequestAssignment, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use super::assignors::{self, Assignor, MemberSubscription, RebalanceProtocol};
use super::{ClientError, Cluster, TopicPartition};

/// Request versions this member speaks.
const FIND_COORDINATOR_VERSION: i16 = 3;
const JOIN_GROUP_VERSION: i16 = 5;
const SYNC_GROUP_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 3;
const LEAVE_GROUP_VERSION: i16 = 3;
const OFFSET_COMMIT_VERSION: i16 = 7;
const OFFSET_FETCH_VERSION: i16 = 7;
const DESCRIBE_GROUPS_VERSION: i16 = 5;
const LIST_GROUPS_VERSION: i16 = 4;
/// The protocol name of the range assignor (the default strategy).
pub const RANGE_ASSIGNOR: &str = "range";
/// The consumer-protocol subscription version sent with a cooperative assignor.
const COOPERATIVE_SUBSCRIPTION_VERSION: i16 = 2;

/// Group member settings.
#[derive(Debug, Clone)]
pub struct GroupMemberConfig {
    /// `host:port` of brokers, comma-separated.
    pub bootstrap: String,
    /// Client id sent in every request header (and the prefix of the member id).
    pub client_id: String,
    /// The group.
    pub group_id: String,
    /// The topics subscribed to.
    pub topics: Vec<String>,
    /// The session timeout asked for.
    pub session_timeout_ms: i32,
    /// The rebalance timeout asked for.
    pub rebalance_timeout_ms: i32,
    /// Per-request timeout (a JoinGroup may wait up to the rebalance timeout on top).
    pub request_timeout_ms: u64,
    /// `partition.assignment.strategy`: the assignors offered, most
    /// preferred first (Kafka's default is range; every member of a group
    /// must offer at least one assignor in common, else the coordinator
    /// answers INCONSISTENT_GROUP_PROTOCOL). Empty means range.
    pub assignors: Vec<Assignor>,
}

/// Why a group request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum GroupClientError {
    /// No answer (connection, timeout): the outcome is unknown.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The coordinator answered with a Kafka error code.
    #[error("error code {0}")]
    Kafka(i16),
}

impl GroupClientError {
    /// Whether the member must rejoin the group (its generation is over).
    pub fn needs_rejoin(&self) -> bool {
        matches!(self, GroupClientError::Kafka(code) if [
            ResponseError::IllegalGeneration.code(),
            ResponseError::UnknownMemberId.code(),
            ResponseError::RebalanceInProgress.code(),
            ResponseError::FencedInstanceId.code(),
        ].contains(code))
    }
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The coordinator accepted it.
    Committed,
    /// The coordinator refused it (nothing was committed): the error code.
    Refused(i16),
    /// No answer, or an answer that leaves the outcome open.
    Unknown,
}

/// The outcome of a join phase.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The generation.
    pub generation_id: i32,
    /// This member's id.
    pub member_id: String,
    /// Whether this member leads (and assigns).
    pub leader: bool,
    /// For the leader: every member and its subscribed topics.
    pub members: Vec<(String, Vec<String>)>,
    /// For the leader: every member's whole subscription (with what it owns).
    pub subscriptions: Vec<MemberSubscription>,
    /// The assignor the coordinator chose.
    pub assignor: Assignor,
}

impl Joined {
    /// How members of this generation give up partitions.
    pub fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.assignor.rebalance_protocol()
    }
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// Kafka's name of its state (`Stable`, `Empty`, ...; `Dead` if unknown).
    pub state: String,
    /// The chosen assignor.
    pub protocol: String,
    /// The members.
    pub members: Vec<MemberDescription>,
}

/// One member of a described group.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Its member id.
    pub member_id: String,
    /// Its client id.
    pub client_id: String,
    /// Its host, as the coordinator saw it.
    pub client_host: String,
    /// Its partitions.
    pub assignment: Vec<TopicPartition>,
}

/// One member of a consumer group.
pub struct GroupMember {
    config: GroupMemberConfig,
    cluster: Cluster,
    bootstrap: Vec<String>,
    next_bootstrap: usize,
    coordinator: Option<String>,
    member_id: String,
    generation_id: i32,
    /// What this member owns, as its cooperative subscription says, and
    /// the generation it got them in.
    owned: Vec<TopicPartition>,
    owned_generation_id: i32,
}

fn group_id(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

fn versioned<T: Encodable>(message: &T) -> Bytes {
    versioned_as(message, 0)
}

fn versioned_as<T: Encodable>(message: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message.encode(&mut buf, version).expect("a supported version encodes");
    buf.freeze()
}

fn unversioned<T: Decodable>(bytes: &Bytes) -> Option<T> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, 3);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::decode(&mut buf, version).ok())).ok().flatten()
}

/// The partitions of an encoded consumer-protocol assignment, in order
/// (none if it does not decode).
fn assigned_partitions(bytes: &Bytes) -> Vec<TopicPartition> {
    let assignment = unversioned::<ConsumerProtocolAssignment>(bytes).unwrap_or_default();
    let mut partitions: Vec<TopicPartition> =
        assignment.assigned_partitions.iter().flat_map(|t| t.partitions.iter().map(|&p| TopicPartition::new(t.topic.0.as_str(), p))).collect();
    partitions.sort();
    partitions
}

/// `items` (a partition and a value each) grouped by topic, in topic order.
fn by_topic<T>(items: impl IntoIterator<Item = (TopicPartition, T)>) -> BTreeMap<String, Vec<(i32, T)>> {
    let mut topics: BTreeMap<String, Vec<(i32, T)>> = BTreeMap::new();
    for (tp, value) in items {
        topics.entry(tp.topic).or_default().push((tp.partition, value));
    }
    topics
}

fn topic_name(topic: String) -> TopicName {
    TopicName(StrBytes::from_string(topic))
}

impl GroupMember {
    /// A member that has not joined yet.
    pub fn new(config: GroupMemberConfig) -> Self {
        let cluster = Cluster::new(&config.bootstrap, &config.client_id, config.request_timeout_ms);
        let bootstrap = config.bootstrap.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        Self { config, cluster, bootstrap, next_bootstrap: 0, coordinator: None, member_id: String::new(), generation_id: -1, owned: Vec::new(), owned_generation_id: -1 }
    }

    /// The assignors offered, most preferred first.
    pub fn assignors(&self) -> Vec<Assignor> {
        if self.config.assignors.is_empty() {
            vec![Assignor::Range]
        } else {
            self.config.assignors.clone()
        }
    }

    /// What this member owns (its last synced assignment, minus what it revoked).
    pub fn owned(&self) -> &[TopicPartition] {
        &self.owned
    }

    /// Records that this member gave up partitions: the next subscription
    /// lists only `owned`.
    pub fn set_owned(&mut self, owned: Vec<TopicPartition>) {
        self.owned = owned;
    }

    /// The JoinGroup metadata of the subscription: version 0 for eager
    /// assignors, version 2 (with owned partitions) when a cooperative one
    /// is offered.
    fn subscription(&self) -> Bytes {
        let topics = self.config.topics.iter().map(|t| StrBytes::from_string(t.clone())).collect();
        let subscription = ConsumerProtocolSubscription::default().with_topics(topics);
        if !self.assignors().iter().any(|a| a.rebalance_protocol() == RebalanceProtocol::Cooperative) {
            return versioned(&subscription);
        }
        let owned = by_topic(self.owned.iter().map(|tp| (tp.clone(), ())))
            .into_iter()
            .map(|(topic, partitions)| {
                kafka_protocol::messages::consumer_protocol_subscription::TopicPartition::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions.into_iter().map(|(p, ())| p).collect())
            })
            .collect();
        versioned_as(&subscription.with_owned_partitions(owned).with_generation_id(self.owned_generation_id), COOPERATIVE_SUBSCRIPTION_VERSION)
    }

    /// This member's id (empty before its first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The generation this member is in (-1 before it joined).
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// Forgets the coordinator after an error that says it moved.
    fn on_error(&mut self, error: &GroupClientError) {
        let moved = match error {
            GroupClientError::Client(_) => true,
            GroupClientError::Kafka(code) => [ResponseError::NotCoordinator.code(), ResponseError::CoordinatorNotAvailable.code(), ResponseError::CoordinatorLoadInProgress.code()].contains(code),
        };
        if moved {
            if let Some(addr) = self.coordinator.take() {
                self.cluster.drop_connection(&addr);
            }
        }
        if matches!(error, GroupClientError::Kafka(code) if *code == ResponseError::UnknownMemberId.code() || *code == ResponseError::FencedInstanceId.code()) {
            self.member_id.clear();
            self.generation_id = -1;
            // A member that is out of the group has lost its partitions
            // (Kafka's "partitions lost"): it claims none when it rejoins.
            self.owned.clear();
        }
    }

    async fn coordinator(&mut self) -> Result<String, GroupClientError> {
        if let Some(addr) = &self.coordinator {
            return Ok(addr.clone());
        }
        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(self.config.group_id.clone())).with_key_type(0);
        let server = self.bootstrap[self.next_bootstrap % self.bootstrap.len()].clone();
        self.next_bootstrap += 1;
        let timeout_ms = self.config.request_timeout_ms;
        let response = match self.cluster.connection(&server).await {
            Ok(connection) => connection.request(&request, FIND_COORDINATOR_VERSION, timeout_ms).await,
            Err(error) => Err(error),
        };
        let response = response.inspect_err(|_| self.cluster.drop_connection(&server))?;
        if response.error_code != 0 {
            return Err(GroupClientError::Kafka(response.error_code));
        }
        let addr = format!("{}:{}", response.host.as_str(), response.port);
        self.coordinator = Some(addr.clone());
        Ok(addr)
    }

    /// Sends `request` to the coordinator.
    async fn call<R: kafka_protocol::protocol::Request>(&mut self, request: &R, version: i16, extra_wait_ms: u64) -> Result<R::Response, GroupClientError> {
        let result = async {
            let addr = self.coordinator().await?;
            let timeout_ms = self.config.request_timeout_ms + extra_wait_ms;
            let connection = self.cluster.connection(&addr).await?;
            Ok(connection.request(request, version, timeout_ms).await?)
        }
        .await;
        if let Err(error) = &result {
            self.on_error(error);
        }
        result
    }

    fn checked<T>(&mut self, code: i16, value: T) -> Result<T, GroupClientError> {
        if code == 0 {
            return Ok(value);
        }
        let error = GroupClientError::Kafka(code);
        self.on_error(&error);
        Err(error)
    }

    /// The join phase: JoinGroup until the coordinator answers with a
    /// generation (a first join gets a member id, then joins again).
    pub async fn join(&mut self) -> Result<Joined, GroupClientError> {
        let subscription = self.subscription();
        let protocols: Vec<JoinGroupRequestProtocol> =
            self.assignors().iter().map(|a| JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str(a.name())).with_metadata(subscription.clone())).collect();
        for _ in 0..2 {
            let request = JoinGroupRequest::default()
                .with_group_id(group_id(&self.config.group_id))
                .with_session_timeout_ms(self.config.session_timeout_ms)
                .with_rebalance_timeout_ms(self.config.rebalance_timeout_ms)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(protocols.clone());
            let wait_ms = u64::try_from(self.config.rebalance_timeout_ms).unwrap_or(0);
            let response = self.call(&request, JOIN_GROUP_VERSION, wait_ms).await?;
            if response.error_code == ResponseError::MemberIdRequired.code() {
                self.member_id = response.member_id.as_str().to_string();
                continue;
            }
            let response = self.checked(response.error_code, response)?;
            self.member_id = response.member_id.as_str().to_string();
            self.generation_id = response.generation_id;
            let leader = response.leader == response.member_id;
            let subscriptions: Vec<MemberSubscription> = response
                .members
                .iter()
                .map(|m| {
                    let subscription = unversioned::<ConsumerProtocolSubscription>(&m.metadata).unwrap_or_default();
                    MemberSubscription {
                        member_id: m.member_id.as_str().to_string(),
                        topics: subscription.topics.iter().map(|t| t.as_str().to_string()).collect(),
                        owned: subscription.owned_partitions.iter().flat_map(|t| t.partitions.iter().map(|&p| TopicPartition::new(t.topic.0.as_str(), p))).collect(),
                        generation_id: subscription.generation_id,
                    }
                })
                .collect();
            let members = subscriptions.iter().map(|s| (s.member_id.clone(), s.topics.clone())).collect();
            // The coordinator chose among what this member offered; an
            // unknown name would be a coordinator bug: fall back to range.
            let assignor = response.protocol_name.as_ref().and_then(|name| Assignor::from_name(name.as_str())).unwrap_or(Assignor::Range);
            return Ok(Joined { generation_id: response.generation_id, member_id: self.member_id.clone(), leader, members, subscriptions, assignor });
        }
        Err(GroupClientError::Kafka(ResponseError::MemberIdRequired.code()))
    }

    /// SyncGroup after [`Self::join`]: the leader runs the chosen assignor
    /// and sends the assignment; every member gets its partitions (and,
    /// from then on, owns them: see [`Self::owned`]).
    pub async fn sync(&mut self, joined: &Joined) -> Result<Vec<TopicPartition>, GroupClientError> {
        let mut assignments = Vec::new();
        if joined.leader {
            let mut topics: Vec<String> = joined.members.iter().flat_map(|(_, t)| t.iter().cloned()).collect();
            topics.sort();
            topics.dedup();
            self.cluster.refresh(&topics).await?;
            let counts: BTreeMap<String, i32> = topics.iter().filter_map(|t| self.cluster.partition_count(t).map(|c| (t.clone(), c))).collect();
            for (member, partitions) in assignors::assign(joined.assignor, &joined.subscriptions, &counts) {
                let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
                    by_topic(partitions.into_iter().map(|tp| (tp, ())))
                        .into_iter()
                        .map(|(topic, partitions)| AssignedPartitions::default().with_topic(topic_name(topic)).with_partitions(partitions.into_iter().map(|(p, ())| p).collect()))
                        .collect(),
                );
                assignments.push(SyncGroupRequestAssignment::default().with_member_id(StrBytes::from_string(member)).with_assignment(versioned(&assignment)));
            }
        }
        let request = SyncGroupRequest::default()
            .with_group_id(group_id(&self.config.group_id))
            .with_generation_id(joined.generation_id)
            .with_member_id(StrBytes::from_string(joined.member_id.clone()))
            .with_assignments(assignments);
        let wait_ms = u64::try_from(self.config.rebalance_timeout_ms).unwrap_or(0);
        let response = self.call(&request, SYNC_GROUP_VERSION, wait_ms).await?;
        let response = self.checked(response.error_code, response)?;
        let assigned = assigned_partitions(&response.assignment);
        self.owned = assigned.clone();
        self.owned_generation_id = joined.generation_id;
        Ok(assigned)
    }

    /// Heartbeat of the current generation.
    pub async fn heartbeat(&mut self) -> Result<(), GroupClientError> {
        let request = HeartbeatRequest::default()
            .with_group_id(group_id(&self.config.group_id))
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let response = self.call(&request, HEARTBEAT_VERSION, 0).await?;
        self.checked(response.error_code, ())
    }

    /// Commits `offsets` (the next offset to consume per partition) in the
    /// current generation.
    pub async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> CommitOutcome {
        let topics = by_topic(offsets.iter().map(|(tp, &offset)| (tp.clone(), offset)))
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetCommitRequestTopic::default().with_name(topic_name(topic)).with_partitions(
                    partitions.into_iter().map(|(p, offset)| OffsetCommitRequestPartition::default().with_partition_index(p).with_committed_offset(offset)).collect(),
                )
            })
            .collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(&self.config.group_id))
            .with_generation_id_or_member_epoch(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_topics(topics);
        let response = match self.call(&request, OFFSET_COMMIT_VERSION, 0).await {
            Ok(response) => response,
            Err(_) => return CommitOutcome::Unknown,
        };
        let code = response.topics.iter().flat_map(|t| t.partitions.iter()).map(|p| p.error_code).find(|&c| c != 0).unwrap_or(0);
        if code == 0 {
            return CommitOutcome::Committed;
        }
        self.on_error(&GroupClientError::Kafka(code));
        // COORDINATOR_NOT_AVAILABLE and REQUEST_TIMED_OUT leave the append
        // (and so the commit) open; the rest are refusals before it.
        if code == ResponseError::CoordinatorNotAvailable.code() || code == ResponseError::RequestTimedOut.code() {
            CommitOutcome::Unknown
        } else {
            CommitOutcome::Refused(code)
        }
    }

    /// The group's committed offsets of `partitions` (-1 when none).
    pub async fn committed(&mut self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>, GroupClientError> {
        let topics = by_topic(partitions.iter().map(|tp| (tp.clone(), ())))
            .into_iter()
            .map(|(topic, partitions)| OffsetFetchRequestTopic::default().with_name(topic_name(topic)).with_partition_indexes(partitions.into_iter().map(|(p, ())| p).collect()))
            .collect();
        let request = OffsetFetchRequest::default().with_group_id(group_id(&self.config.group_id)).with_topics(Some(topics));
        let response = self.call(&request, OFFSET_FETCH_VERSION, 0).await?;
        let response = self.checked(response.error_code, response)?;
        let mut offsets = BTreeMap::new();
        for topic in &response.topics {
            for p in &topic.partitions {
                let code = p.error_code;
                self.checked(code, ())?;
                offsets.insert(TopicPartition::new(topic.name.0.as_str(), p.partition_index), p.committed_offset);
            }
        }
        Ok(offsets)
    }

    /// DescribeGroups of this member's group, as its coordinator sees it:
    /// the state, the protocol, and each member with its assignment.
    pub async fn describe(&mut self) -> Result<GroupDescription, GroupClientError> {
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(&self.config.group_id)]);
        let response = self.call(&request, DESCRIBE_GROUPS_VERSION, 0).await?;
        let group = response.groups.into_iter().next().ok_or_else(|| GroupClientError::Client(ClientError::BadResponse("no group in DescribeGroups".into())))?;
        let group = self.checked(group.error_code, group)?;
        let members = group
            .members
            .iter()
            .map(|m| {
                let partitions = assigned_partitions(&m.member_assignment);
                MemberDescription {
                    member_id: m.member_id.as_str().to_string(),
                    client_id: m.client_id.as_str().to_string(),
                    client_host: m.client_host.as_str().to_string(),
                    assignment: partitions,
                }
            })
            .collect();
        Ok(GroupDescription { state: group.group_state.as_str().to_string(), protocol: group.protocol_data.as_str().to_string(), members })
    }

    /// Every committed offset of this member's group.
    pub async fn committed_all(&mut self) -> Result<BTreeMap<TopicPartition, i64>, GroupClientError> {
        let request = OffsetFetchRequest::default().with_group_id(group_id(&self.config.group_id)).with_topics(None);
        let response = self.call(&request, OFFSET_FETCH_VERSION, 0).await?;
        let response = self.checked(response.error_code, response)?;
        Ok(response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (TopicPartition::new(t.name.0.as_str(), p.partition_index), p.committed_offset)))
            .collect())
    }

    /// Leaves the group (best effort: a member that cannot reach the
    /// coordinator is removed when its session expires).
    pub async fn leave(&mut self) {
        if self.member_id.is_empty() {
            return;
        }
        let request = LeaveGroupRequest::default().with_group_id(group_id(&self.config.group_id)).with_members(vec![
            kafka_protocol::messages::leave_group_request::MemberIdentity::default().with_member_id(StrBytes::from_string(self.member_id.clone())),
        ]);
        let _ = self.call(&request, LEAVE_GROUP_VERSION, 0).await;
        self.member_id.clear();
        self.generation_id = -1;
        self.owned.clear();
    }
}

/// Every group of the cluster: ListGroups asked of each broker (each
/// lists the groups it coordinates), as `(group, state, protocol type)`.
pub async fn list_groups(cluster: &mut Cluster) -> Result<Vec<(String, String, String)>, ClientError> {
    cluster.refresh(&[]).await?;
    let timeout_ms = cluster.timeout_ms();
    let mut groups = Vec::new();
    for broker in cluster.brokers() {
        let response = cluster.connection(&broker).await?.request(&ListGroupsRequest::default(), LIST_GROUPS_VERSION, timeout_ms).await?;
        if response.error_code != 0 {
            return Err(ClientError::BadResponse(format!("ListGroups at {broker}: error code {}", response.error_code)));
        }
        groups.extend(response.groups.into_iter().map(|g| (g.group_id.0.as_str().to_string(), g.group_state.as_str().to_string(), g.protocol_type.as_str().to_string())));
    }
    groups.sort();
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_protocol_round_trips() {
        let subscription = ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_static_str("t")]);
        let decoded: ConsumerProtocolSubscription = unversioned(&versioned(&subscription)).expect("decodes");
        assert_eq!(decoded.topics, subscription.topics);
        assert!(unversioned::<ConsumerProtocolAssignment>(&Bytes::from_static(b"\x00")).is_none(), "short bytes are no assignment");
    }
}
