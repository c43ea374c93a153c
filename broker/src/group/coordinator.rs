//! The group coordinator state machine (see the module docs of `group`).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use super::consumer_protocol::{ConsumerGroupDescription, ConsumerGroups, ConsumerHeartbeat, ConsumerHeartbeatResponse, TopicCounts};
use super::records::{GroupMetadataValue, MemberRecord, OffsetsRecord};
use super::types::*;

mod txn_offsets;

/// The `__consumer_offsets` partition of a group, as Kafka chooses it:
/// Java's `String.hashCode` of the group id, sign bit cleared, modulo the
/// partition count. Clients never compute it, but an operator reading
/// `__consumer_offsets` (or a mixed cluster) expects Kafka's placement.
pub fn partition_for_group(group_id: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in group_id.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (hash & 0x7fff_ffff) % partitions.max(1)
}

#[derive(Debug, Clone)]
struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<Protocol>,
    assignment: Bytes,
    awaiting_join: Option<Waiter>,
    awaiting_sync: Option<Waiter>,
    /// Removed when `now_ms` passes this without a heartbeat or commit.
    session_deadline_ms: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| p.metadata.clone()).unwrap_or_default()
    }
    fn same_protocols(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }
}

#[derive(Debug, Clone)]
struct Group {
    partition: i32,
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// Static instance id → its current member id.
    static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their deadline.
    pending_members: BTreeMap<String, u64>,
    /// The join phase ends by then even if members are missing.
    rebalance_deadline_ms: u64,
    /// A new group's first join phase does not end before then.
    initial_delay_until_ms: Option<u64>,
    offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Transactional offsets not yet resolved by their producer's marker,
    /// per producer id (see `txn_offsets`).
    /// Each with the append sequence of its record.
    pending_txn_offsets: BTreeMap<i64, BTreeMap<TopicPartition, (CommittedOffset, u64)>>,
    /// The append sequence of the record behind each committed offset.
    offset_appended_at: BTreeMap<TopicPartition, u64>,
    /// The generation whose record (with the leader's assignment) is being
    /// appended: the group becomes Stable, and members learn their
    /// assignment, only once it is durable ([`GroupCoordinator::generation_stored`]).
    pending_store: Option<i32>,
    /// When the group entered its state (retention of an empty group's
    /// offsets counts from when it became empty, KIP-211).
    state_since_ms: u64,
}

impl Group {
    fn new(partition: i32, now_ms: u64) -> Self {
        Self {
            partition,
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: None,
            offsets: BTreeMap::new(),
            pending_txn_offsets: BTreeMap::new(),
            offset_appended_at: BTreeMap::new(),
            pending_store: None,
            state_since_ms: now_ms,
        }
    }

    fn set_state(&mut self, state: GroupState, now_ms: u64) {
        if self.state != state {
            self.state = state;
            self.state_since_ms = now_ms;
        }
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn check_invariants(&self) {
        for (id, member) in &self.members {
            if self.state != GroupState::PreparingRebalance {
                assert!(member.awaiting_join.is_none(), "member {id} awaits a join response in {:?}", self.state);
            }
            if self.state != GroupState::CompletingRebalance {
                assert!(member.awaiting_sync.is_none(), "member {id} awaits a sync response in {:?}", self.state);
            }
        }
        if self.state == GroupState::Stable || self.state == GroupState::CompletingRebalance {
            let leader = self.leader_id.as_deref().expect("a generation with members has a leader");
            assert!(self.members.contains_key(leader), "leader {leader} is not a member");
        }
        for (instance, member_id) in &self.static_members {
            assert!(
                self.members.get(member_id).is_some_and(|m| m.group_instance_id.as_deref() == Some(instance)),
                "static instance {instance} maps to a missing member {member_id}"
            );
        }
    }

    fn metadata_record(&self, now_ms: u64) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: protocol.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: now_ms as i64,
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberRecord {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol.as_deref().map(|p| m.metadata_for(p)).unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// Whether this coordinator serves a `__consumer_offsets` partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    Loading,
    Loaded,
}

/// The group coordinator of one broker: the groups of the
/// `__consumer_offsets` partitions it leads.
pub struct GroupCoordinator {
    config: GroupConfig,
    offsets_partitions: i32,
    owned: BTreeMap<i32, Ownership>,
    groups: BTreeMap<String, Group>,
    /// KIP-848 groups (membership in memory only; their offsets live in
    /// `groups`, as an empty classic group's would).
    consumer: ConsumerGroups,
    outputs: Vec<GroupOutput>,
    rng: ChaCha8Rng,
    next_retention_check_ms: u64,
    /// The newest epoch of each producer id that committed transactional
    /// offsets, per `__consumer_offsets` partition.
    txn_producer_epochs: BTreeMap<(i32, i64), i16>,
    /// Counts offset appends (and offset records loaded), in log order:
    /// which of a plain and a transactional commit came last.
    append_seq: u64,
}

impl GroupCoordinator {
    /// A coordinator owning no partition yet; `offsets_partitions` is the
    /// partition count of `__consumer_offsets`; `rng` makes member ids.
    pub fn new(config: GroupConfig, offsets_partitions: i32, rng: ChaCha8Rng) -> Self {
        let next_retention_check_ms = config.offsets_retention_check_interval_ms;
        Self {
            consumer: ConsumerGroups::new(config.clone()),
            config,
            offsets_partitions: offsets_partitions.max(1),
            owned: BTreeMap::new(),
            groups: BTreeMap::new(),
            outputs: Vec::new(),
            rng,
            next_retention_check_ms,
            txn_producer_epochs: BTreeMap::new(),
            append_seq: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.offsets_partitions)
    }

    /// Delayed answers and records to append, in order.
    pub fn take_outputs(&mut self) -> Vec<GroupOutput> {
        std::mem::take(&mut self.outputs)
    }

    // ----- ownership of `__consumer_offsets` partitions -----

    /// This broker now leads `partition`: its groups are replayed with
    /// [`Self::load_record`], then [`Self::finish_load`]; until then its
    /// groups answer COORDINATOR_LOAD_IN_PROGRESS.
    pub fn begin_load(&mut self, partition: i32) {
        self.unload(partition);
        self.owned.insert(partition, Ownership::Loading);
    }

    /// Replays one record of a partition being loaded (in log order).
    pub fn load_record(&mut self, partition: i32, record: OffsetsRecord, now_ms: u64) {
        debug_assert_eq!(self.owned.get(&partition), Some(&Ownership::Loading));
        match record {
            OffsetsRecord::Offset { group_id, partition: tp, value } => {
                self.append_seq += 1;
                let group = self.groups.entry(group_id).or_insert_with(|| Group::new(partition, now_ms));
                match value {
                    Some(offset) => {
                        group.offset_appended_at.insert(tp.clone(), self.append_seq);
                        group.offsets.insert(tp, offset);
                    }
                    None => {
                        group.offset_appended_at.remove(&tp);
                        group.offsets.remove(&tp);
                    }
                }
            }
            OffsetsRecord::Group { group_id, value: None } => {
                self.groups.remove(&group_id);
            }
            OffsetsRecord::Group { group_id, value: Some(value) } => {
                let group = self.groups.entry(group_id).or_insert_with(|| Group::new(partition, now_ms));
                assert!(value.generation_id >= group.generation_id || value.generation_id == 0, "generations only grow in the log");
                group.generation_id = value.generation_id;
                group.protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
                group.protocol_name = value.protocol_name.clone();
                group.leader_id = value.leader.clone();
                group.members.clear();
                group.static_members.clear();
                for m in value.members {
                    if let Some(instance) = &m.group_instance_id {
                        group.static_members.insert(instance.clone(), m.member_id.clone());
                    }
                    let protocols = match &value.protocol_name {
                        Some(name) => vec![Protocol { name: name.clone(), metadata: m.subscription.clone() }],
                        None => Vec::new(),
                    };
                    group.members.insert(
                        m.member_id,
                        Member {
                            group_instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            session_timeout_ms: m.session_timeout_ms,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            protocol_type: value.protocol_type.clone(),
                            protocols,
                            assignment: m.assignment,
                            awaiting_join: None,
                            awaiting_sync: None,
                            session_deadline_ms: 0,
                        },
                    );
                }
                let state = if group.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
                group.state = state;
                if value.current_state_timestamp_ms >= 0 {
                    group.state_since_ms = value.current_state_timestamp_ms as u64;
                }
            }
        }
    }

    /// The partition's records are all replayed: its groups are served.
    /// Members get a fresh session timeout from now (they could not
    /// heartbeat while the group had no coordinator).
    pub fn finish_load(&mut self, partition: i32, now_ms: u64) {
        self.owned.insert(partition, Ownership::Loaded);
        for group in self.groups.values_mut().filter(|g| g.partition == partition) {
            for member in group.members.values_mut() {
                member.session_deadline_ms = now_ms.saturating_add(member.session_timeout_ms.max(0) as u64);
            }
            if group.members.is_empty() && group.state != GroupState::Empty {
                group.set_state(GroupState::Empty, now_ms);
            }
            group.check_invariants();
        }
    }

    /// This broker no longer leads `partition`: its groups are dropped and
    /// their waiting requests answered NOT_COORDINATOR (the clients look the
    /// coordinator up again).
    pub fn unload(&mut self, partition: i32) {
        if self.owned.remove(&partition).is_none() {
            return;
        }
        self.consumer.unload(partition);
        self.txn_producer_epochs.retain(|(p, _), _| *p != partition);
        let ids: Vec<String> = self.groups.iter().filter(|(_, g)| g.partition == partition).map(|(id, _)| id.clone()).collect();
        for id in ids {
            if let Some(group) = self.groups.remove(&id) {
                for (member_id, member) in group.members {
                    if let Some(waiter) = member.awaiting_join {
                        self.outputs.push(GroupOutput::Join { waiter, response: JoinResponse::error(GroupError::NotCoordinator, &member_id) });
                    }
                    if let Some(waiter) = member.awaiting_sync {
                        self.outputs.push(GroupOutput::Sync { waiter, response: SyncResponse::error(GroupError::NotCoordinator) });
                    }
                }
            }
        }
    }

    /// Whether `partition` is loaded or loading here.
    pub fn owns(&self, partition: i32) -> bool {
        self.owned.contains_key(&partition)
    }

    /// The partitions loaded or loading here.
    pub fn owned_partitions(&self) -> Vec<i32> {
        self.owned.keys().copied().collect()
    }

    /// Whether this coordinator serves `group_id` now.
    pub fn check_coordinator(&self, group_id: &str) -> Result<(), GroupError> {
        match self.owned.get(&self.partition_of(group_id)) {
            Some(Ownership::Loaded) => Ok(()),
            Some(Ownership::Loading) => Err(GroupError::CoordinatorLoadInProgress),
            None => Err(GroupError::NotCoordinator),
        }
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        format!(
            "{client_id}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    // ----- JoinGroup -----

    /// JoinGroup: answered now, or later through [`GroupOutput::Join`]
    /// once the join phase ends.
    pub fn join(&mut self, now_ms: u64, waiter: Waiter, request: JoinRequest) -> Reply<JoinResponse> {
        let member_id = request.member_id.clone();
        if request.group_id.is_empty() {
            return Reply::Now(JoinResponse::error(GroupError::InvalidGroupId, &member_id));
        }
        if let Err(error) = self.check_coordinator(&request.group_id) {
            return Reply::Now(JoinResponse::error(error, &member_id));
        }
        if request.session_timeout_ms < self.config.min_session_timeout_ms || request.session_timeout_ms > self.config.max_session_timeout_ms {
            return Reply::Now(JoinResponse::error(GroupError::InvalidSessionTimeout, &member_id));
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Reply::Now(JoinResponse::error(GroupError::InconsistentGroupProtocol, &member_id));
        }
        // One protocol per group id: a KIP-848 group with members refuses
        // classic joins (an empty one gives its id up).
        if self.consumer.has_members(&request.group_id) {
            return Reply::Now(JoinResponse::error(GroupError::InconsistentGroupProtocol, &member_id));
        }
        self.consumer.remove_empty(&request.group_id);
        let partition = self.partition_of(&request.group_id);
        let group_id = request.group_id.clone();
        let group_exists = self.groups.contains_key(&group_id);
        if !group_exists && !member_id.is_empty() {
            return Reply::Now(JoinResponse::error(GroupError::UnknownMemberId, &member_id));
        }
        let new_id = member_id.is_empty().then(|| self.new_member_id(&request.client_id));
        let group = self.groups.entry(group_id.clone()).or_insert_with(|| Group::new(partition, now_ms));
        if !protocols_compatible(group, &request) {
            if group.members.is_empty() && group.state == GroupState::Empty && !group_exists {
                self.groups.remove(&group_id);
            }
            return Reply::Now(JoinResponse::error(GroupError::InconsistentGroupProtocol, &member_id));
        }
        let reply = if member_id.is_empty() {
            let new_id = new_id.expect("drawn above");
            match request.group_instance_id.clone() {
                Some(instance) => join_static_unknown(group, now_ms, waiter, &request, instance, new_id, &mut self.outputs, &self.config),
                None if request.require_known_member_id => {
                    let deadline = now_ms.saturating_add(request.session_timeout_ms as u64);
                    group.pending_members.insert(new_id.clone(), deadline);
                    Reply::Now(JoinResponse::error(GroupError::MemberIdRequired, &new_id))
                }
                None => {
                    add_member(group, now_ms, waiter, &request, new_id, &mut self.outputs, &self.config);
                    Reply::Later
                }
            }
        } else if group.pending_members.remove(&member_id).is_some() {
            add_member(group, now_ms, waiter, &request, member_id, &mut self.outputs, &self.config);
            Reply::Later
        } else {
            join_known(group, now_ms, waiter, &request, &mut self.outputs, &self.config)
        };
        try_complete_join(group, &group_id, now_ms, &mut self.outputs);
        group.check_invariants();
        reply
    }

    // ----- SyncGroup -----

    /// SyncGroup: answered now, or later through [`GroupOutput::Sync`]
    /// once the leader's assignment arrives.
    pub fn sync(&mut self, now_ms: u64, waiter: Waiter, request: SyncRequest) -> Reply<SyncResponse> {
        if let Err(error) = self.check_coordinator(&request.group_id) {
            return Reply::Now(SyncResponse::error(error));
        }
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return Reply::Now(SyncResponse::error(GroupError::UnknownMemberId));
        };
        if let Err(error) = check_member(group, &request.member_id, request.group_instance_id.as_deref()) {
            return Reply::Now(SyncResponse::error(error));
        }
        if request.generation_id != group.generation_id {
            return Reply::Now(SyncResponse::error(GroupError::IllegalGeneration));
        }
        if request.protocol_type.as_ref().is_some_and(|t| Some(t) != group.protocol_type.as_ref())
            || request.protocol_name.as_ref().is_some_and(|n| Some(n) != group.protocol_name.as_ref())
        {
            return Reply::Now(SyncResponse::error(GroupError::InconsistentGroupProtocol));
        }
        let protocol_type = group.protocol_type.clone();
        let protocol_name = group.protocol_name.clone();
        let reply = match group.state {
            GroupState::Empty | GroupState::Dead => Reply::Now(SyncResponse::error(GroupError::UnknownMemberId)),
            GroupState::PreparingRebalance => Reply::Now(SyncResponse::error(GroupError::RebalanceInProgress)),
            GroupState::Stable => {
                let member = group.members.get_mut(&request.member_id).expect("checked");
                member.session_deadline_ms = now_ms.saturating_add(member.session_timeout_ms as u64);
                Reply::Now(SyncResponse { error: None, protocol_type, protocol_name, assignment: member.assignment.clone() })
            }
            GroupState::CompletingRebalance => {
                let member = group.members.get_mut(&request.member_id).expect("checked");
                member.session_deadline_ms = now_ms.saturating_add(member.session_timeout_ms as u64);
                member.awaiting_sync = Some(waiter);
                if group.leader_id.as_deref() == Some(request.member_id.as_str()) && group.pending_store.is_none() {
                    let assignments: BTreeMap<String, Bytes> = request.assignments.into_iter().collect();
                    for (id, member) in group.members.iter_mut() {
                        member.assignment = assignments.get(id).cloned().unwrap_or_default();
                    }
                    // Stable, and the answers, once the record is durable.
                    group.pending_store = Some(group.generation_id);
                    let record = group.metadata_record(now_ms);
                    self.outputs.push(GroupOutput::Append {
                        group_id: request.group_id.clone(),
                        records: vec![OffsetsRecord::Group { group_id: request.group_id.clone(), value: Some(record) }],
                    });
                }
                Reply::Later
            }
        };
        group.check_invariants();
        reply
    }

    // ----- Heartbeat -----

    /// Heartbeat: keeps the member's session; tells it to rejoin while
    /// the group is preparing a rebalance.
    pub fn heartbeat(&mut self, now_ms: u64, group_id: &str, member_id: &str, group_instance_id: Option<&str>, generation_id: i32) -> Result<(), GroupError> {
        self.check_coordinator(group_id)?;
        let group = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        check_member(group, member_id, group_instance_id)?;
        if generation_id != group.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let member = group.members.get_mut(member_id).expect("checked");
        member.session_deadline_ms = now_ms.saturating_add(member.session_timeout_ms as u64);
        match group.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    // ----- LeaveGroup -----

    /// LeaveGroup: each member leaves (or gets its own error); the group
    /// rebalances without them.
    pub fn leave(&mut self, now_ms: u64, group_id: &str, leaving: &[LeavingMember]) -> Result<Vec<Result<String, GroupError>>, GroupError> {
        self.check_coordinator(group_id)?;
        let group = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        let mut results = Vec::with_capacity(leaving.len());
        let mut left = false;
        for member in leaving {
            let member_id = match (&member.group_instance_id, member.member_id.as_str()) {
                (Some(instance), id) => match group.static_members.get(instance) {
                    Some(current) if id.is_empty() || id == current => Ok(current.clone()),
                    Some(_) => Err(GroupError::FencedInstanceId),
                    None => Err(GroupError::UnknownMemberId),
                },
                (None, id) if group.members.contains_key(id) => Ok(id.to_string()),
                (None, id) if group.pending_members.remove(id).is_some() => {
                    left = true;
                    results.push(Ok(id.to_string()));
                    continue;
                }
                (None, _) => Err(GroupError::UnknownMemberId),
            };
            if let Ok(id) = &member_id {
                remove_member(group, id, &mut self.outputs);
                left = true;
            }
            results.push(member_id);
        }
        if left {
            member_set_changed(group, group_id, now_ms, &mut self.outputs, &self.config);
        }
        group.check_invariants();
        Ok(results)
    }

    // ----- KIP-848 consumer groups -----

    /// ConsumerGroupHeartbeat (see [`super::consumer_protocol`]). `topics`
    /// has the partition count of every topic the group subscribes to,
    /// this request's subscription included
    /// ([`Self::consumer_subscribed_topics`]).
    pub fn consumer_heartbeat(&mut self, now_ms: u64, request: ConsumerHeartbeat, topics: &TopicCounts) -> Result<ConsumerHeartbeatResponse, GroupError> {
        if request.group_id.is_empty() {
            return Err(GroupError::InvalidRequest);
        }
        self.check_coordinator(&request.group_id)?;
        // One protocol per group id: a classic group in use is not a
        // consumer group (GROUP_ID_NOT_FOUND, as Kafka answers).
        if self.groups.get(&request.group_id).is_some_and(|g| !g.members.is_empty() || g.state != GroupState::Empty) {
            return Err(GroupError::GroupIdNotFound);
        }
        let partition = self.partition_of(&request.group_id);
        self.consumer.heartbeat(now_ms, partition, request, topics, &mut self.rng)
    }

    /// Group epoch and assignment epoch of a KIP-848 group, for tests.
    pub fn consumer_epochs(&self, group_id: &str) -> Option<(i32, i32)> {
        self.consumer.epochs(group_id)
    }

    /// The topics whose partition counts [`Self::consumer_heartbeat`] needs.
    pub fn consumer_subscribed_topics(&self, group_id: &str, subscribing: Option<&[String]>) -> std::collections::BTreeSet<String> {
        self.consumer.subscribed_topics(group_id, subscribing)
    }

    /// ConsumerGroupDescribe of one group: GROUP_ID_NOT_FOUND for an
    /// unknown or classic group.
    pub fn consumer_describe(&self, group_id: &str) -> Result<ConsumerGroupDescription, GroupError> {
        self.check_coordinator(group_id)?;
        self.consumer.describe(group_id)
    }

    /// OffsetFetch v9 from a member of a KIP-848 group: its epoch must be
    /// current. Requests for other groups pass.
    pub fn check_fetch_member(&self, group_id: &str, member_id: Option<&str>, member_epoch: i32) -> Result<(), GroupError> {
        let Some(member_id) = member_id else { return Ok(()) };
        if !self.consumer.contains(group_id) || !self.config.fence_generations {
            return Ok(());
        }
        self.consumer.validate_member_epoch(group_id, member_id, member_epoch, true)
    }

    // ----- offsets -----

    /// OffsetCommit, first step: validates against the group's generation
    /// and says what to append. Nothing is visible until
    /// [`Self::commit_appended`].
    pub fn prepare_commit(&mut self, now_ms: u64, request: CommitRequest) -> CommitPlan {
        let verdict = self.validate_commit(now_ms, &request);
        self.plan_commit(now_ms, request.group_id, request.offsets, verdict)
    }

    /// The plan of a commit (plain or transactional) whose request-level
    /// checks gave `verdict`: each offset is accepted unless its metadata
    /// is too large, stamped with `now_ms`, and gets its record.
    pub(super) fn plan_commit(&mut self, now_ms: u64, group_id: String, offsets: Vec<(TopicPartition, CommittedOffset)>, verdict: Result<(), GroupError>) -> CommitPlan {
        self.append_seq += 1;
        let mut plan = CommitPlan { group_id, results: Vec::new(), accepted: Vec::new(), records: Vec::new(), append_seq: self.append_seq };
        for (tp, mut offset) in offsets {
            let result = verdict.and_then(|()| if offset.metadata.len() > 4096 { Err(GroupError::OffsetMetadataTooLarge) } else { Ok(()) });
            if result.is_ok() {
                offset.commit_timestamp_ms = now_ms as i64;
                plan.records.push(OffsetsRecord::Offset { group_id: plan.group_id.clone(), partition: tp.clone(), value: Some(offset.clone()) });
                plan.accepted.push((tp.clone(), offset));
            }
            plan.results.push((tp, result));
        }
        debug_assert_eq!(plan.records.len(), plan.accepted.len(), "one record per accepted offset");
        plan
    }

    fn validate_commit(&mut self, now_ms: u64, request: &CommitRequest) -> Result<(), GroupError> {
        if request.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.check_coordinator(&request.group_id)?;
        let partition = self.partition_of(&request.group_id);
        let simple = request.generation_id < 0 && request.member_id.is_empty();
        if self.consumer.contains(&request.group_id) && self.config.fence_generations {
            // A KIP-848 group: the generation field is a member epoch
            // (OffsetCommit v9+).
            if !simple && !request.member_epoch {
                return Err(GroupError::UnsupportedVersion);
            }
            self.consumer.validate_member_epoch(&request.group_id, &request.member_id, request.generation_id, false)?;
            self.groups.entry(request.group_id.clone()).or_insert_with(|| Group::new(partition, now_ms));
            return Ok(());
        }
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            if simple || !self.config.fence_generations {
                self.groups.insert(request.group_id.clone(), Group::new(partition, now_ms));
                return Ok(());
            }
            return Err(GroupError::IllegalGeneration);
        };
        if !self.config.fence_generations {
            return Ok(());
        }
        if simple {
            return if group.members.is_empty() { Ok(()) } else { Err(GroupError::UnknownMemberId) };
        }
        if let Err(error) = check_member(group, &request.member_id, request.group_instance_id.as_deref()) {
            crate::mark!("group.commit.fenced");
            return Err(error);
        }
        if request.generation_id != group.generation_id {
            crate::mark!("group.commit.fenced");
            return Err(GroupError::IllegalGeneration);
        }
        match group.state {
            GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance | GroupState::Stable => {
                let member = group.members.get_mut(&request.member_id).expect("checked");
                member.session_deadline_ms = now_ms.saturating_add(member.session_timeout_ms as u64);
                Ok(())
            }
        }
    }

    /// OffsetCommit, second step: the plan's records are durable, so its
    /// offsets are now what OffsetFetch returns. A plan whose append failed
    /// is dropped instead; the client retries.
    pub fn commit_appended(&mut self, plan: CommitPlan) {
        let Some(group) = self.groups.get_mut(&plan.group_id) else {
            return;
        };
        for (tp, offset) in plan.accepted {
            group.offset_appended_at.insert(tp.clone(), plan.append_seq);
            group.offsets.insert(tp, offset);
        }
    }

    /// The record of generation `generation_id` of `group_id` (appended
    /// after the leader's SyncGroup) is durable: the group is Stable and
    /// every waiting member gets its assignment.
    pub fn generation_stored(&mut self, now_ms: u64, group_id: &str, generation_id: i32) {
        let Some(group) = self.groups.get_mut(group_id) else { return };
        if group.pending_store != Some(generation_id) || group.generation_id != generation_id || group.state != GroupState::CompletingRebalance {
            return;
        }
        group.pending_store = None;
        group.set_state(GroupState::Stable, now_ms);
        let (protocol_type, protocol_name) = (group.protocol_type.clone(), group.protocol_name.clone());
        for member in group.members.values_mut() {
            if let Some(waiter) = member.awaiting_sync.take() {
                self.outputs.push(GroupOutput::Sync {
                    waiter,
                    response: SyncResponse { error: None, protocol_type: protocol_type.clone(), protocol_name: protocol_name.clone(), assignment: member.assignment.clone() },
                });
            }
        }
        group.check_invariants();
    }

    /// The record of generation `generation_id` of `group_id` did not
    /// become durable (its append failed or was not replicated in time):
    /// the generation is void, since a coordinator that takes over would
    /// not know it and could hand the same generation id to other members.
    /// Its members are told to rejoin (REBALANCE_IN_PROGRESS).
    pub fn generation_not_durable(&mut self, now_ms: u64, group_id: &str, generation_id: i32) {
        let Some(group) = self.groups.get_mut(group_id) else { return };
        if group.pending_store != Some(generation_id) || group.generation_id != generation_id {
            return;
        }
        crate::mark!("group.generation.voided");
        prepare_rebalance(group, now_ms, &mut self.outputs, &self.config);
        group.check_invariants();
    }

    /// OffsetFetch: the committed offsets of `partitions` (all when None).
    /// A partition without one is absent from the answer.
    pub fn fetch_offsets(&self, group_id: &str, partitions: Option<&[TopicPartition]>) -> Result<BTreeMap<TopicPartition, CommittedOffset>, GroupError> {
        self.check_coordinator(group_id)?;
        let Some(group) = self.groups.get(group_id) else {
            return Ok(BTreeMap::new());
        };
        Ok(match partitions {
            None => group.offsets.clone(),
            Some(list) => list.iter().filter_map(|tp| group.offsets.get(tp).map(|o| (tp.clone(), o.clone()))).collect(),
        })
    }

    /// OffsetDelete: removes offsets of partitions the group does not
    /// consume (here: any, while the group is empty).
    pub fn delete_offsets(&mut self, group_id: &str, partitions: &[TopicPartition]) -> Result<Vec<OffsetsRecord>, GroupError> {
        self.check_coordinator(group_id)?;
        let group = self.groups.get_mut(group_id).ok_or(GroupError::GroupIdNotFound)?;
        if !group.members.is_empty() {
            return Err(GroupError::NonEmptyGroup);
        }
        let mut records = Vec::new();
        for tp in partitions {
            group.offset_appended_at.remove(tp);
            if group.offsets.remove(tp).is_some() {
                records.push(OffsetsRecord::Offset { group_id: group_id.to_string(), partition: tp.clone(), value: None });
            }
        }
        Ok(records)
    }

    // ----- admin -----

    /// ListGroups: every group this coordinator serves, with its protocol
    /// type and Kafka's name of its state. A KIP-848 group is listed with
    /// protocol type `consumer` and its own state (Empty, Assigning,
    /// Reconciling, Stable), not as the empty classic group that holds its
    /// offsets.
    pub fn list_groups(&self) -> Vec<(String, String, &'static str)> {
        let loaded = |partition: i32| self.owned.get(&partition) == Some(&Ownership::Loaded);
        let mut listed: BTreeMap<String, (String, &'static str)> = self
            .groups
            .iter()
            .filter(|(_, g)| loaded(g.partition))
            .map(|(id, g)| (id.clone(), (g.protocol_type.clone().unwrap_or_default(), g.state.name())))
            .collect();
        for (id, partition, state) in self.consumer.list() {
            if loaded(partition) {
                listed.insert(id, ("consumer".to_string(), state.name()));
            }
        }
        listed.into_iter().map(|(id, (protocol_type, state))| (id, protocol_type, state)).collect()
    }

    /// DescribeGroups for one group (a group never seen is reported Dead,
    /// as Kafka does).
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        self.check_coordinator(group_id)?;
        let Some(group) = self.groups.get(group_id) else {
            return Ok(GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                generation_id: -1,
                members: Vec::new(),
            });
        };
        let protocol = group.protocol_name.clone().unwrap_or_default();
        Ok(GroupDescription {
            group_id: group_id.to_string(),
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol.clone(),
            generation_id: group.generation_id,
            members: group
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// DeleteGroups for one group: only an empty group; returns the
    /// tombstones to append (its offsets and its metadata).
    pub fn delete_group(&mut self, group_id: &str) -> Result<Vec<OffsetsRecord>, GroupError> {
        self.check_coordinator(group_id)?;
        if self.consumer.has_members(group_id) {
            return Err(GroupError::NonEmptyGroup);
        }
        self.consumer.remove_empty(group_id);
        let group = self.groups.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        if !group.members.is_empty() || group.state != GroupState::Empty {
            return Err(GroupError::NonEmptyGroup);
        }
        let group = self.groups.remove(group_id).expect("present");
        let mut records: Vec<OffsetsRecord> = group
            .offsets
            .into_keys()
            .map(|tp| OffsetsRecord::Offset { group_id: group_id.to_string(), partition: tp, value: None })
            .collect();
        records.push(OffsetsRecord::Group { group_id: group_id.to_string(), value: None });
        Ok(records)
    }

    /// The current generation of a group (None if unknown), for tests and
    /// the checker's ledgers.
    pub fn generation(&self, group_id: &str) -> Option<(i32, GroupState)> {
        self.groups.get(group_id).map(|g| (g.generation_id, g.state))
    }

    // ----- time -----

    /// Time passes: sessions expire, join phases end, pending member ids
    /// lapse, and the offsets of long-empty groups expire.
    pub fn tick(&mut self, now_ms: u64) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            let Some(group) = self.groups.get_mut(&id) else { continue };
            if self.owned.get(&group.partition) != Some(&Ownership::Loaded) {
                continue;
            }
            let before = group.members.len() + group.pending_members.len();
            group.pending_members.retain(|_, deadline| *deadline > now_ms);
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| m.session_deadline_ms <= now_ms && !(group.state == GroupState::PreparingRebalance && m.awaiting_join.is_some()))
                .map(|(id, _)| id.clone())
                .collect();
            for member_id in &expired {
                crate::mark!("group.member.session_expired");
                remove_member(group, member_id, &mut self.outputs);
            }
            if group.members.len() + group.pending_members.len() != before {
                member_set_changed(group, &id, now_ms, &mut self.outputs, &self.config);
            }
            if group.state == GroupState::PreparingRebalance {
                let delay_over = group.initial_delay_until_ms.is_none_or(|until| now_ms >= until);
                if now_ms >= group.rebalance_deadline_ms || (delay_over && group.all_joined()) {
                    complete_join(group, &id, now_ms, &mut self.outputs);
                }
            }
            group.check_invariants();
        }
        let owned = &self.owned;
        self.consumer.tick(now_ms, |partition| owned.get(&partition) == Some(&Ownership::Loaded));
        if now_ms >= self.next_retention_check_ms {
            self.next_retention_check_ms = now_ms.saturating_add(self.config.offsets_retention_check_interval_ms.max(1));
            self.expire_offsets(now_ms);
        }
    }

    fn expire_offsets(&mut self, now_ms: u64) {
        let retention = self.config.offsets_retention_ms;
        let mut removed_groups = Vec::new();
        for (id, group) in self.groups.iter_mut() {
            // Pending transactional offsets keep a group: its marker is still to come.
            if group.state != GroupState::Empty || self.owned.get(&group.partition) != Some(&Ownership::Loaded) || self.consumer.has_members(id) || !group.pending_txn_offsets.is_empty() {
                continue;
            }
            if now_ms.saturating_sub(group.state_since_ms) < retention {
                continue;
            }
            let mut records: Vec<OffsetsRecord> = std::mem::take(&mut group.offsets)
                .into_keys()
                .map(|tp| OffsetsRecord::Offset { group_id: id.clone(), partition: tp, value: None })
                .collect();
            records.push(OffsetsRecord::Group { group_id: id.clone(), value: None });
            self.outputs.push(GroupOutput::Append { group_id: id.clone(), records });
            removed_groups.push(id.clone());
        }
        for id in removed_groups {
            self.groups.remove(&id);
        }
    }
}

fn protocols_compatible(group: &Group, request: &JoinRequest) -> bool {
    if group.members.is_empty() {
        return true;
    }
    if group.protocol_type.as_deref().is_some_and(|t| t != request.protocol_type)
        || group.members.values().any(|m| m.protocol_type != request.protocol_type)
    {
        return false;
    }
    // Some protocol must be supported by every member (the joining one
    // replaces its own entry if it is a member already).
    request.protocols.iter().any(|p| {
        group
            .members
            .iter()
            .filter(|(id, _)| **id != request.member_id)
            .all(|(_, m)| m.protocols.iter().any(|q| q.name == p.name))
    })
}

fn check_member(group: &Group, member_id: &str, group_instance_id: Option<&str>) -> Result<(), GroupError> {
    if let Some(instance) = group_instance_id {
        match group.static_members.get(instance) {
            Some(current) if current != member_id => return Err(GroupError::FencedInstanceId),
            Some(_) => {}
            None => return Err(GroupError::UnknownMemberId),
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(GroupError::UnknownMemberId);
    }
    Ok(())
}

fn new_member(now_ms: u64, waiter: Waiter, request: &JoinRequest) -> Member {
    Member {
        group_instance_id: request.group_instance_id.clone(),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: request.rebalance_timeout_ms.max(request.session_timeout_ms),
        protocol_type: request.protocol_type.clone(),
        protocols: request.protocols.clone(),
        assignment: Bytes::new(),
        awaiting_join: Some(waiter),
        awaiting_sync: None,
        session_deadline_ms: now_ms.saturating_add(request.session_timeout_ms as u64),
    }
}

fn add_member(group: &mut Group, now_ms: u64, waiter: Waiter, request: &JoinRequest, member_id: String, outputs: &mut Vec<GroupOutput>, config: &GroupConfig) {
    if group.members.is_empty() {
        group.protocol_type = Some(request.protocol_type.clone());
    }
    if let Some(instance) = &request.group_instance_id {
        group.static_members.insert(instance.clone(), member_id.clone());
    }
    if group.leader_id.is_none() {
        group.leader_id = Some(member_id.clone());
    }
    group.members.insert(member_id, new_member(now_ms, waiter, request));
    prepare_rebalance(group, now_ms, outputs, config);
}

/// A static member rejoining without its member id: it gets a new id, and
/// the old one is fenced (a zombie holding it gets FENCED_INSTANCE_ID).
#[allow(clippy::too_many_arguments)]
fn join_static_unknown(
    group: &mut Group,
    now_ms: u64,
    waiter: Waiter,
    request: &JoinRequest,
    instance: String,
    new_id: String,
    outputs: &mut Vec<GroupOutput>,
    config: &GroupConfig,
) -> Reply<JoinResponse> {
    match group.static_members.get(&instance).cloned() {
        None => {
            add_member(group, now_ms, waiter, request, new_id, outputs, config);
            Reply::Later
        }
        Some(old_id) => {
            let mut member = group.members.remove(&old_id).expect("static member present");
            if let Some(w) = member.awaiting_join.take() {
                outputs.push(GroupOutput::Join { waiter: w, response: JoinResponse::error(GroupError::FencedInstanceId, &old_id) });
            }
            if let Some(w) = member.awaiting_sync.take() {
                outputs.push(GroupOutput::Sync { waiter: w, response: SyncResponse::error(GroupError::FencedInstanceId) });
            }
            if group.leader_id.as_deref() == Some(old_id.as_str()) {
                group.leader_id = Some(new_id.clone());
            }
            group.static_members.insert(instance, new_id.clone());
            let mut replacement = new_member(now_ms, waiter, request);
            replacement.assignment = member.assignment;
            group.members.insert(new_id, replacement);
            prepare_rebalance(group, now_ms, outputs, config);
            Reply::Later
        }
    }
}

fn join_known(group: &mut Group, now_ms: u64, waiter: Waiter, request: &JoinRequest, outputs: &mut Vec<GroupOutput>, config: &GroupConfig) -> Reply<JoinResponse> {
    let member_id = request.member_id.clone();
    if let Err(error) = check_member(group, &member_id, request.group_instance_id.as_deref()) {
        return Reply::Now(JoinResponse::error(error, &member_id));
    }
    let is_leader = group.leader_id.as_deref() == Some(member_id.as_str());
    let member = group.members.get_mut(&member_id).expect("checked");
    member.session_deadline_ms = now_ms.saturating_add(request.session_timeout_ms as u64);
    match group.state {
        GroupState::PreparingRebalance => {
            if let Some(old) = member.awaiting_join.replace(waiter) {
                outputs.push(GroupOutput::Join { waiter: old, response: JoinResponse::error(GroupError::RebalanceInProgress, &member_id) });
            }
            member.protocols = request.protocols.clone();
            member.session_timeout_ms = request.session_timeout_ms;
            member.rebalance_timeout_ms = request.rebalance_timeout_ms.max(request.session_timeout_ms);
            Reply::Later
        }
        GroupState::CompletingRebalance | GroupState::Stable if member.same_protocols(&request.protocols) && !(is_leader && group.state == GroupState::Stable) => {
            // A rejoin that changes nothing (a lost JoinGroup response):
            // the current generation again, without a rebalance.
            let protocol = group.protocol_name.clone().unwrap_or_default();
            let members = if is_leader { joined_members(group, &protocol) } else { Vec::new() };
            Reply::Now(JoinResponse {
                error: None,
                generation_id: group.generation_id,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol_name.clone(),
                leader: group.leader_id.clone().unwrap_or_default(),
                member_id,
                members,
            })
        }
        _ => {
            member.protocols = request.protocols.clone();
            member.session_timeout_ms = request.session_timeout_ms;
            member.rebalance_timeout_ms = request.rebalance_timeout_ms.max(request.session_timeout_ms);
            member.awaiting_join = Some(waiter);
            prepare_rebalance(group, now_ms, outputs, config);
            Reply::Later
        }
    }
}

fn joined_members(group: &Group, protocol: &str) -> Vec<JoinedMember> {
    group
        .members
        .iter()
        .map(|(id, m)| JoinedMember { member_id: id.clone(), group_instance_id: m.group_instance_id.clone(), metadata: m.metadata_for(protocol) })
        .collect()
}

fn remove_member(group: &mut Group, member_id: &str, outputs: &mut Vec<GroupOutput>) {
    let Some(member) = group.members.remove(member_id) else { return };
    if let Some(instance) = &member.group_instance_id {
        if group.static_members.get(instance).map(String::as_str) == Some(member_id) {
            group.static_members.remove(instance);
        }
    }
    if let Some(waiter) = member.awaiting_join {
        outputs.push(GroupOutput::Join { waiter, response: JoinResponse::error(GroupError::UnknownMemberId, member_id) });
    }
    if let Some(waiter) = member.awaiting_sync {
        outputs.push(GroupOutput::Sync { waiter, response: SyncResponse::error(GroupError::UnknownMemberId) });
    }
    if group.leader_id.as_deref() == Some(member_id) {
        group.leader_id = group.members.keys().next().cloned();
    }
}

/// After members left or expired: a generation in progress must be redone.
fn member_set_changed(group: &mut Group, group_id: &str, now_ms: u64, outputs: &mut Vec<GroupOutput>, config: &GroupConfig) {
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            if group.members.is_empty() {
                // The last member left: the next generation is empty.
                group.set_state(GroupState::PreparingRebalance, now_ms);
                complete_join(group, group_id, now_ms, outputs);
            } else {
                prepare_rebalance(group, now_ms, outputs, config);
            }
        }
        GroupState::PreparingRebalance => try_complete_join(group, group_id, now_ms, outputs),
        GroupState::Empty | GroupState::Dead => {}
    }
}

fn prepare_rebalance(group: &mut Group, now_ms: u64, outputs: &mut Vec<GroupOutput>, config: &GroupConfig) {
    // A generation record still being stored is void from now on.
    group.pending_store = None;
    if group.state == GroupState::CompletingRebalance {
        // The assignment being waited for is void: members rejoin.
        for member in group.members.values_mut() {
            member.assignment = Bytes::new();
            if let Some(waiter) = member.awaiting_sync.take() {
                outputs.push(GroupOutput::Sync { waiter, response: SyncResponse::error(GroupError::RebalanceInProgress) });
            }
        }
    }
    let rebalance_timeout = group.members.values().map(|m| m.rebalance_timeout_ms.max(0) as u64).max().unwrap_or(0);
    match group.state {
        GroupState::Empty => {
            group.initial_delay_until_ms = Some(now_ms.saturating_add(config.initial_rebalance_delay_ms.min(rebalance_timeout)));
            group.rebalance_deadline_ms = now_ms.saturating_add(rebalance_timeout);
        }
        GroupState::PreparingRebalance => {
            // A member joining during a new group's initial delay extends
            // it, up to the rebalance timeout (Kafka's InitialDelayedJoin).
            // The join phase's deadline stays where it was set.
            if let Some(until) = group.initial_delay_until_ms {
                group.initial_delay_until_ms = Some(now_ms.saturating_add(config.initial_rebalance_delay_ms).min(group.rebalance_deadline_ms).max(until));
            }
        }
        _ => {
            group.initial_delay_until_ms = None;
            group.rebalance_deadline_ms = now_ms.saturating_add(rebalance_timeout);
        }
    }
    group.set_state(GroupState::PreparingRebalance, now_ms);
}

fn try_complete_join(group: &mut Group, group_id: &str, now_ms: u64, outputs: &mut Vec<GroupOutput>) {
    if group.state != GroupState::PreparingRebalance {
        return;
    }
    let delay_over = group.initial_delay_until_ms.is_none_or(|until| now_ms >= until);
    if (delay_over && group.all_joined()) || group.members.is_empty() {
        complete_join(group, group_id, now_ms, outputs);
    }
}

/// Ends a join phase: members that did not rejoin are removed, and the
/// next generation begins (empty if nobody is left).
fn complete_join(group: &mut Group, group_id: &str, now_ms: u64, outputs: &mut Vec<GroupOutput>) {
    assert_eq!(group.state, GroupState::PreparingRebalance);
    let missing: Vec<String> = group.members.iter().filter(|(_, m)| m.awaiting_join.is_none()).map(|(id, _)| id.clone()).collect();
    for id in &missing {
        remove_member(group, id, outputs);
    }
    group.pending_members.clear();
    group.initial_delay_until_ms = None;
    let previous = group.generation_id;
    group.generation_id = group.generation_id.wrapping_add(1).max(1);
    assert!(group.generation_id > previous || previous == i32::MAX, "generations only grow");
    if group.members.is_empty() {
        group.protocol_name = None;
        group.leader_id = None;
        group.set_state(GroupState::Empty, now_ms);
        outputs.push(GroupOutput::Append {
            group_id: group_id.to_string(),
            records: vec![OffsetsRecord::Group { group_id: group_id.to_string(), value: Some(group.metadata_record(now_ms)) }],
        });
        return;
    }
    let protocol = select_protocol(group);
    group.protocol_name = Some(protocol.clone());
    if group.leader_id.as_ref().is_none_or(|l| !group.members.contains_key(l)) {
        group.leader_id = group.members.keys().next().cloned();
    }
    group.set_state(GroupState::CompletingRebalance, now_ms);
    let leader = group.leader_id.clone().expect("a member leads");
    let members = joined_members(group, &protocol);
    for (id, member) in group.members.iter_mut() {
        member.session_deadline_ms = now_ms.saturating_add(member.session_timeout_ms as u64);
        if let Some(waiter) = member.awaiting_join.take() {
            outputs.push(GroupOutput::Join {
                waiter,
                response: JoinResponse {
                    error: None,
                    generation_id: group.generation_id,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader { members.clone() } else { Vec::new() },
                },
            });
        }
    }
}

/// Kafka's vote: among the protocols every member supports, each member
/// votes for the one it prefers most; the most votes wins (ties: the one
/// named first by the earliest member).
fn select_protocol(group: &Group) -> String {
    let mut candidates: Option<BTreeSet<&str>> = None;
    for member in group.members.values() {
        let names: BTreeSet<&str> = member.protocols.iter().map(|p| p.name.as_str()).collect();
        candidates = Some(match candidates {
            None => names,
            Some(c) => c.intersection(&names).copied().collect(),
        });
    }
    let candidates = candidates.unwrap_or_default();
    let mut votes: Vec<(&str, usize)> = Vec::new();
    for member in group.members.values() {
        if let Some(choice) = member.protocols.iter().map(|p| p.name.as_str()).find(|n| candidates.contains(n)) {
            match votes.iter_mut().find(|(n, _)| *n == choice) {
                Some((_, count)) => *count += 1,
                None => votes.push((choice, 1)),
            }
        }
    }
    let best = votes.iter().map(|(_, c)| *c).max().unwrap_or(0);
    votes.into_iter().find(|(_, c)| *c == best).map(|(n, _)| n.to_string()).unwrap_or_default()
}
