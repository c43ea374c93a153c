//! The KIP-848 consumer group protocol ("new" protocol, librdkafka's
//! `group.protocol=consumer`): one ConsumerGroupHeartbeat loop per member,
//! assignment computed on the coordinator, and incremental reconciliation
//! with member epochs. Sans-IO like the classic core: heartbeats and ticks
//! (`now_ms`) go in, answers come out; the driver supplies the partition
//! count of every subscribed topic.
//!
//! # Epochs
//!
//! - The **group epoch** grows by one whenever what the assignment depends
//!   on changes: a member joins or goes (leave, session expiry, revocation
//!   timeout), a member's subscription or preferred assignor changes, or a
//!   subscribed topic's partition count changes.
//! - The **target assignment** (member → partitions) is recomputed at once
//!   by the group's server assignor (`uniform`, the default, or `range`)
//!   when the group epoch passes the **assignment epoch**, which then
//!   equals the group epoch. The assignor is the one most members prefer
//!   (`server_assignor`), else `uniform`.
//! - A **member epoch** is the assignment epoch a member has caught up
//!   with. It only grows. A heartbeat must carry the member's epoch (or
//!   its previous one, when the last answer was lost and the member owns
//!   nothing it should not); otherwise FENCED_MEMBER_EPOCH, and the member
//!   rejoins with epoch 0.
//!
//! # Reconciliation (per member, on each of its heartbeats)
//!
//! ```text
//!               target moved away from partitions the member holds
//!   Stable ────────────────────────────────────────► UnrevokedPartitions
//!     ▲  ▲                                             │ member reports it no longer owns them
//!     │  │ all new partitions free                     ▼ (epoch := assignment epoch)
//!     │  └──────────────────────────────────── (pick up new partitions)
//!     │                                                │ some new partition still held by another
//!     └────────── the others released them ─── UnreleasedPartitions
//! ```
//!
//! - **Revocation before reassignment.** A member first gives up what its
//!   target no longer holds: the coordinator answers with its assignment
//!   minus those partitions (epoch unchanged) and keeps them as *pending
//!   revocation* until a heartbeat's `topic_partitions` (what the member
//!   owns) no longer lists them. Only then does the member's epoch move to
//!   the assignment epoch.
//! - **A partition goes to its new owner only once free**: not assigned to,
//!   nor pending revocation from, any other member. New partitions still
//!   held elsewhere are handed over on a later heartbeat.
//! - A member that does not revoke within its rebalance timeout is
//!   removed, as is one that does not heartbeat within
//!   `group.consumer.session.timeout.ms`; a removed member's partitions
//!   are free at once.
//!
//! # Invariants (asserted after every step)
//!
//! - No partition is assigned to or pending revocation from two members.
//! - Member epochs never exceed the assignment epoch, which never exceeds
//!   the group epoch; every epoch only grows.
//!
//! # Durability
//!
//! Membership lives in memory only (Kafka writes ConsumerGroupMetadata,
//! ConsumerGroupMemberMetadata, target-assignment and current-assignment
//! records, key versions 3 to 8, to `__consumer_offsets`; we do not yet).
//! A coordinator restart or failover therefore forgets the members: their
//! next heartbeat gets UNKNOWN_MEMBER_ID and librdkafka rejoins with epoch
//! 0, keeping its committed offsets. Committed offsets go through the
//! classic path ([`super::GroupCoordinator::prepare_commit`]) and are as
//! durable as a classic group's.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use super::types::{GroupConfig, GroupError, TopicPartition};

/// The server assignors, by name.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];
/// The assignor of a group whose members name none.
pub const DEFAULT_ASSIGNOR: &str = "uniform";

/// A set of partitions.
pub type Assignment = BTreeSet<TopicPartition>;

/// Partition counts of the topics a heartbeat's group subscribes to (a
/// topic absent here does not exist and gets no partition).
pub type TopicCounts = BTreeMap<String, i32>;

/// Member epoch of a leave (ConsumerGroupHeartbeat).
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member's temporary leave.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// One ConsumerGroupHeartbeat, in the core's terms (topics by name).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerHeartbeat {
    /// The group.
    pub group_id: String,
    /// Empty on a first join at v0 (the coordinator picks the id).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member's temporary leave,
    /// else the member's current epoch.
    pub member_epoch: i32,
    /// Static membership (`group.instance.id`).
    pub instance_id: Option<String>,
    /// The member's rack, reported back by ConsumerGroupDescribe.
    pub rack_id: Option<String>,
    /// -1 when unchanged; required on join.
    pub rebalance_timeout_ms: i32,
    /// None when unchanged; required on join (unless a regex is given).
    pub subscribed_topic_names: Option<Vec<String>>,
    /// v1: a regular expression (full match, RE2 syntax) over topic names;
    /// None when unchanged, empty to drop it. Internal topics (`__…`) never
    /// match.
    pub subscribed_topic_regex: Option<String>,
    /// None when unchanged.
    pub server_assignor: Option<String>,
    /// What the member owns now; None when unchanged since its last report.
    pub owned: Option<Assignment>,
    /// The client id (request header).
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatResponse {
    /// The member id (the coordinator's pick on a v0 first join).
    pub member_id: String,
    /// The member's epoch; -1 (or -2) after a leave.
    pub member_epoch: i32,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The partitions the member may own now; None when unchanged.
    pub assignment: Option<Assignment>,
}

/// Where a member is in its reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Holds its target at the member epoch.
    Stable,
    /// Must give up `pending_revocation` first.
    UnrevokedPartitions,
    /// At the assignment epoch, but some target partitions are still held
    /// by others.
    UnreleasedPartitions,
}

/// A group's state as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    /// No members.
    Empty,
    /// The target assignment lags the group epoch (never seen here: the
    /// target is recomputed at once).
    Assigning,
    /// Some member has not caught up with the target.
    Reconciling,
    /// Every member holds its target at the assignment epoch.
    Stable,
}

impl ConsumerGroupState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
            Self::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    member_epoch: i32,
    previous_member_epoch: i32,
    state: MemberState,
    rebalance_timeout_ms: i32,
    /// The topics named in the subscription.
    subscribed_names: BTreeSet<String>,
    /// The subscription's regex, if any (its source and its full-match form).
    regex: Option<(String, regex_automata::meta::Regex)>,
    /// What the member subscribes to now: its names, and the existing
    /// topics its regex matches.
    subscribed: BTreeSet<String>,
    server_assignor: Option<String>,
    assigned: Assignment,
    pending_revocation: Assignment,
    /// What the member last said it owns.
    owned: Assignment,
    session_deadline_ms: u64,
    revocation_deadline_ms: Option<u64>,
    /// A static member that left with epoch -2: its instance may come back
    /// (under a new member id) and take its place within the session.
    static_left: bool,
}

#[derive(Debug, Clone)]
struct Group {
    partition: i32,
    group_epoch: i32,
    assignment_epoch: i32,
    assignor: String,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, Assignment>,
    /// Partition counts of the subscribed topics the target was computed from.
    topic_counts: TopicCounts,
}

/// One member, as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Member epoch.
    pub member_epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regex.
    pub subscribed_topic_regex: Option<String>,
    /// What it holds now.
    pub assignment: Assignment,
    /// What the assignor wants it to hold.
    pub target_assignment: Assignment,
}

/// One group, as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: ConsumerGroupState,
    /// Group epoch.
    pub group_epoch: i32,
    /// Assignment epoch.
    pub assignment_epoch: i32,
    /// The server assignor in use.
    pub assignor_name: String,
    /// Members.
    pub members: Vec<ConsumerMemberDescription>,
}

/// The KIP-848 groups of one coordinator.
#[derive(Debug)]
pub struct ConsumerGroups {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
}

impl ConsumerGroups {
    /// No groups yet.
    pub fn new(config: GroupConfig) -> Self {
        Self { config, groups: BTreeMap::new() }
    }

    /// Whether `group_id` is a KIP-848 group with at least one member.
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups.get(group_id).is_some_and(|g| !g.members.is_empty())
    }

    /// Whether `group_id` is a KIP-848 group here (possibly empty).
    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    /// Forgets an empty group (a classic group takes the id over).
    pub fn remove_empty(&mut self, group_id: &str) {
        if self.groups.get(group_id).is_some_and(|g| g.members.is_empty()) {
            self.groups.remove(group_id);
        }
    }

    /// Forgets every group of `__consumer_offsets` partition `partition`
    /// (this coordinator no longer leads it; members rejoin elsewhere).
    pub fn unload(&mut self, partition: i32) {
        self.groups.retain(|_, g| g.partition != partition);
    }

    /// The subscribed topics of a group plus `extra` (for the driver, to
    /// look up partition counts before a heartbeat).
    pub fn subscribed_topics(&self, group_id: &str, extra: Option<&[String]>) -> BTreeSet<String> {
        let mut topics: BTreeSet<String> = extra.unwrap_or_default().iter().cloned().collect();
        if let Some(group) = self.groups.get(group_id) {
            for member in group.members.values() {
                topics.extend(member.subscribed.iter().cloned());
            }
        }
        topics
    }

    /// Group epoch and assignment epoch (None if unknown), for tests.
    pub fn epochs(&self, group_id: &str) -> Option<(i32, i32)> {
        self.groups.get(group_id).map(|g| (g.group_epoch, g.assignment_epoch))
    }

    /// ConsumerGroupHeartbeat. `partition` is the group's
    /// `__consumer_offsets` partition, `topics` the partition count of
    /// every topic the group subscribes to (after this heartbeat), `rng`
    /// draws a member id on a v0 first join.
    pub fn heartbeat(&mut self, now_ms: u64, partition: i32, request: ConsumerHeartbeat, topics: &TopicCounts, rng: &mut ChaCha8Rng) -> Result<ConsumerHeartbeatResponse, GroupError> {
        validate(&request)?;
        let interval = self.config.consumer_heartbeat_interval_ms;
        let session_ms = self.config.consumer_session_timeout_ms.max(0) as u64;
        if request.member_epoch < 0 {
            return self.leave(&request, topics);
        }
        let group = self.groups.entry(request.group_id.clone()).or_insert_with(|| Group {
            partition,
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: DEFAULT_ASSIGNOR.to_string(),
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            topic_counts: TopicCounts::new(),
        });
        let mut changed = false;
        let joining = request.member_epoch == 0;
        let member_id = if joining {
            join_member(group, &request, now_ms, rng, self.config.consumer_max_size)?
        } else {
            let member = group.members.get(&request.member_id).ok_or(GroupError::UnknownMemberId)?;
            let owns_only_assigned = request.owned.as_ref().is_none_or(|owned| owned.is_subset(&member.assigned));
            let epoch_ok = request.member_epoch == member.member_epoch
                || (request.member_epoch == member.previous_member_epoch && owns_only_assigned);
            if !epoch_ok || member.static_left {
                return Err(GroupError::FencedMemberEpoch);
            }
            request.member_id.clone()
        };
        let before = {
            let member = group.members.get_mut(&member_id).expect("joined or checked");
            member.session_deadline_ms = now_ms.saturating_add(session_ms);
            if joining {
                changed = true;
            }
            if request.rebalance_timeout_ms >= 0 {
                member.rebalance_timeout_ms = request.rebalance_timeout_ms;
            }
            if let Some(names) = &request.subscribed_topic_names {
                member.subscribed_names = names.iter().cloned().collect();
            }
            if let Some(source) = &request.subscribed_topic_regex {
                member.regex = if source.is_empty() { None } else { Some((source.clone(), compile(source)?)) };
            }
            if request.server_assignor.is_some() && request.server_assignor != member.server_assignor {
                member.server_assignor = request.server_assignor.clone();
                changed = true;
            }
            if request.rack_id.is_some() {
                member.rack_id = request.rack_id.clone();
            }
            if let Some(owned) = &request.owned {
                member.owned = owned.clone();
            }
            (member.member_epoch, member.assigned.clone())
        };
        for member in group.members.values_mut() {
            let resolved = resolve(member, topics);
            if resolved != member.subscribed {
                member.subscribed = resolved;
                changed = true;
            }
        }
        let counts = subscribed_counts(group, topics);
        if counts != group.topic_counts {
            changed = true;
        }
        if changed {
            group.group_epoch += 1;
            group.topic_counts = counts;
            compute_target(group);
        }
        reconcile(group, &member_id, now_ms);
        check_invariants(group);
        let member = &group.members[&member_id];
        let assignment_changed = (member.member_epoch, &member.assigned) != (before.0, &before.1);
        let send = joining || request.owned.is_some() || assignment_changed;
        Ok(ConsumerHeartbeatResponse {
            member_id,
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: send.then(|| member.assigned.clone()),
        })
    }

    fn leave(&mut self, request: &ConsumerHeartbeat, topics: &TopicCounts) -> Result<ConsumerHeartbeatResponse, GroupError> {
        let interval = self.config.consumer_heartbeat_interval_ms;
        let group = self.groups.get_mut(&request.group_id).ok_or(GroupError::UnknownMemberId)?;
        let member = group.members.get_mut(&request.member_id).ok_or(GroupError::UnknownMemberId)?;
        if request.member_epoch == STATIC_LEAVE_EPOCH && member.instance_id.is_some() {
            // Keeps its partitions for its instance's return within the
            // session timeout; they are not moved meanwhile.
            member.static_left = true;
            member.owned.clear();
            member.pending_revocation.clear();
        } else {
            group.members.remove(&request.member_id);
            member_set_changed(group, topics);
        }
        check_invariants(group);
        Ok(ConsumerHeartbeatResponse { member_id: request.member_id.clone(), member_epoch: request.member_epoch, heartbeat_interval_ms: interval, assignment: None })
    }

    /// Validates an OffsetCommit (v9+, `member_epoch`) or OffsetFetch v9
    /// from a member of a KIP-848 group: UNKNOWN_MEMBER_ID for an unknown
    /// member, STALE_MEMBER_EPOCH for an older epoch, FENCED_MEMBER_EPOCH
    /// for a newer one. An admin request (no member id, epoch -1) is
    /// accepted only while the group has no members (commits) or always
    /// (fetches: `fetch` true).
    pub fn validate_member_epoch(&self, group_id: &str, member_id: &str, member_epoch: i32, fetch: bool) -> Result<(), GroupError> {
        let Some(group) = self.groups.get(group_id) else {
            return if member_id.is_empty() && member_epoch < 0 { Ok(()) } else { Err(GroupError::UnknownMemberId) };
        };
        if member_id.is_empty() && member_epoch < 0 {
            return if fetch || group.members.is_empty() { Ok(()) } else { Err(GroupError::UnknownMemberId) };
        }
        let member = group.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
        match member_epoch.cmp(&member.member_epoch) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(GroupError::StaleMemberEpoch),
            std::cmp::Ordering::Greater => Err(GroupError::FencedMemberEpoch),
        }
    }

    /// ConsumerGroupDescribe of one group.
    pub fn describe(&self, group_id: &str) -> Result<ConsumerGroupDescription, GroupError> {
        let group = self.groups.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        let state = if group.members.is_empty() {
            ConsumerGroupState::Empty
        } else if group.assignment_epoch != group.group_epoch {
            ConsumerGroupState::Assigning
        } else if group.members.values().any(|m| m.state != MemberState::Stable || m.member_epoch != group.assignment_epoch) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        };
        Ok(ConsumerGroupDescription {
            group_id: group_id.to_string(),
            state,
            group_epoch: group.group_epoch,
            assignment_epoch: group.assignment_epoch,
            assignor_name: group.assignor.clone(),
            members: group
                .members
                .iter()
                .map(|(id, m)| ConsumerMemberDescription {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.regex.as_ref().map(|(source, _)| source.clone()),
                    assignment: m.assigned.clone(),
                    target_assignment: group.target.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Every group here with its `__consumer_offsets` partition and state, for ListGroups.
    pub fn list(&self) -> Vec<(String, i32, ConsumerGroupState)> {
        self.groups.iter().filter_map(|(id, g)| self.describe(id).ok().map(|d| (id.clone(), g.partition, d.state))).collect()
    }

    /// Time passes: members past their session or their revocation
    /// deadline are removed (groups of partitions `loaded` says yes to).
    pub fn tick(&mut self, now_ms: u64, loaded: impl Fn(i32) -> bool) {
        for group in self.groups.values_mut().filter(|g| loaded(g.partition)) {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| m.session_deadline_ms <= now_ms || m.revocation_deadline_ms.is_some_and(|d| d <= now_ms))
                .map(|(id, _)| id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in &expired {
                group.members.remove(id);
            }
            let topics = group.topic_counts.clone();
            member_set_changed(group, &topics);
            check_invariants(group);
        }
    }
}

/// A subscription regex, anchored at both ends as Kafka matches it.
fn compile(source: &str) -> Result<regex_automata::meta::Regex, GroupError> {
    regex_automata::meta::Regex::new(&format!("^(?:{source})$")).map_err(|_| GroupError::InvalidRegularExpression)
}

/// The topics a member subscribes to, given the topics that exist.
fn resolve(member: &Member, topics: &TopicCounts) -> BTreeSet<String> {
    let mut resolved = member.subscribed_names.clone();
    if let Some((_, regex)) = &member.regex {
        resolved.extend(topics.keys().filter(|t| !t.starts_with("__") && regex.is_match(t.as_str())).cloned());
    }
    resolved
}

fn validate(request: &ConsumerHeartbeat) -> Result<(), GroupError> {
    if request.group_id.is_empty() {
        return Err(GroupError::InvalidRequest);
    }
    if request.member_epoch < STATIC_LEAVE_EPOCH {
        return Err(GroupError::InvalidRequest);
    }
    if request.member_epoch != 0 && request.member_id.is_empty() {
        return Err(GroupError::InvalidRequest);
    }
    if request.member_epoch == 0 {
        if request.rebalance_timeout_ms < 0 || (request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none()) {
            return Err(GroupError::InvalidRequest);
        }
        if request.owned.as_ref().is_some_and(|owned| !owned.is_empty()) {
            return Err(GroupError::InvalidRequest);
        }
    }
    if let Some(assignor) = &request.server_assignor {
        if !ASSIGNORS.contains(&assignor.as_str()) {
            return Err(GroupError::UnsupportedAssignor);
        }
    }
    Ok(())
}

fn new_member_id(rng: &mut ChaCha8Rng) -> String {
    // A UUID-shaped id (librdkafka prints it; nothing parses it).
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48, b & 0xffff_ffff_ffff)
}

/// Epoch 0: a new member, a member starting over (it owns nothing now),
/// or a static instance coming back.
fn join_member(group: &mut Group, request: &ConsumerHeartbeat, now_ms: u64, rng: &mut ChaCha8Rng, max_size: usize) -> Result<String, GroupError> {
    let member_id = if request.member_id.is_empty() { new_member_id(rng) } else { request.member_id.clone() };
    if let Some(instance) = &request.instance_id {
        let holder = group.members.iter().find(|(id, m)| m.instance_id.as_ref() == Some(instance) && **id != member_id).map(|(id, m)| (id.clone(), m.static_left));
        match holder {
            Some((_, false)) => return Err(GroupError::UnreleasedInstanceId),
            Some((old_id, true)) => {
                // The instance's partitions move with it to the new id.
                let mut member = group.members.remove(&old_id).expect("found");
                member.static_left = false;
                member.client_id = request.client_id.clone();
                member.client_host = request.client_host.clone();
                if let Some(target) = group.target.remove(&old_id) {
                    group.target.insert(member_id.clone(), target);
                }
                group.members.insert(member_id.clone(), member);
                return Ok(member_id);
            }
            None => {}
        }
    }
    if let Some(member) = group.members.get_mut(&member_id) {
        // Starting over (e.g. after FENCED_MEMBER_EPOCH): it dropped its
        // partitions, so they are free now.
        member.assigned.clear();
        member.pending_revocation.clear();
        member.owned.clear();
        member.revocation_deadline_ms = None;
        member.state = MemberState::Stable;
        return Ok(member_id);
    }
    if group.members.len() >= max_size {
        return Err(GroupError::GroupMaxSizeReached);
    }
    group.members.insert(
        member_id.clone(),
        Member {
            instance_id: request.instance_id.clone(),
            rack_id: request.rack_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            subscribed_names: BTreeSet::new(),
            regex: None,
            subscribed: BTreeSet::new(),
            server_assignor: None,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            owned: Assignment::new(),
            session_deadline_ms: now_ms,
            revocation_deadline_ms: None,
            static_left: false,
        },
    );
    Ok(member_id)
}

fn subscribed_counts(group: &Group, topics: &TopicCounts) -> TopicCounts {
    let mut counts = TopicCounts::new();
    for member in group.members.values() {
        for topic in &member.subscribed {
            if let Some(&n) = topics.get(topic) {
                counts.insert(topic.clone(), n.max(0));
            }
        }
    }
    counts
}

fn member_set_changed(group: &mut Group, topics: &TopicCounts) {
    group.group_epoch += 1;
    group.topic_counts = subscribed_counts(group, topics);
    compute_target(group);
}

/// The group's assignor: the one most members prefer, else the default.
fn choose_assignor(group: &Group) -> String {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for member in group.members.values() {
        if let Some(name) = &member.server_assignor {
            *votes.entry(name.as_str()).or_default() += 1;
        }
    }
    let best = votes.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
    best.map_or(DEFAULT_ASSIGNOR, |(name, _)| name).to_string()
}

fn compute_target(group: &mut Group) {
    assert!(group.group_epoch > group.assignment_epoch, "a target is computed for a new group epoch");
    group.assignor = choose_assignor(group);
    let subscriptions: BTreeMap<String, BTreeSet<String>> = group.members.iter().map(|(id, m)| (id.clone(), m.subscribed.clone())).collect();
    group.target = match group.assignor.as_str() {
        "range" => range_assign(&subscriptions, &group.topic_counts),
        _ => uniform_assign(&subscriptions, &group.topic_counts, &group.target),
    };
    group.assignment_epoch = group.group_epoch;
}

/// `range`: per topic, the members subscribed to it (by id) take
/// contiguous ranges, the first ones one partition more.
pub fn range_assign(subscriptions: &BTreeMap<String, BTreeSet<String>>, topics: &TopicCounts) -> BTreeMap<String, Assignment> {
    let mut target: BTreeMap<String, Assignment> = subscriptions.keys().map(|id| (id.clone(), Assignment::new())).collect();
    for (topic, &count) in topics {
        let members: Vec<&String> = subscriptions.iter().filter(|(_, s)| s.contains(topic)).map(|(id, _)| id).collect();
        if members.is_empty() {
            continue;
        }
        let (each, extra) = (count as usize / members.len(), count as usize % members.len());
        let mut next = 0i32;
        for (i, member) in members.iter().enumerate() {
            let take = each + usize::from(i < extra);
            for p in next..next + take as i32 {
                target.get_mut(*member).expect("listed").insert((topic.clone(), p));
            }
            next += take as i32;
        }
    }
    target
}

/// `uniform`: balanced and sticky. Each member's share is what a greedy
/// fewest-first pass gives it; partitions stay with their previous target
/// owner while it is under its share, the rest go to the member furthest
/// under its share.
pub fn uniform_assign(subscriptions: &BTreeMap<String, BTreeSet<String>>, topics: &TopicCounts, previous: &BTreeMap<String, Assignment>) -> BTreeMap<String, Assignment> {
    let partitions: Vec<TopicPartition> = topics.iter().flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p))).collect();
    let candidates = |tp: &TopicPartition| -> Vec<&String> { subscriptions.iter().filter(|(_, s)| s.contains(&tp.0)).map(|(id, _)| id).collect() };
    let mut share: BTreeMap<&String, usize> = subscriptions.keys().map(|id| (id, 0)).collect();
    for tp in &partitions {
        if let Some(best) = candidates(tp).into_iter().min_by_key(|id| (share[*id], *id)) {
            *share.get_mut(best).expect("member") += 1;
        }
    }
    let mut target: BTreeMap<String, Assignment> = subscriptions.keys().map(|id| (id.clone(), Assignment::new())).collect();
    let previous_owner: BTreeMap<&TopicPartition, &String> = previous.iter().flat_map(|(id, a)| a.iter().map(move |tp| (tp, id))).collect();
    let mut rest = Vec::new();
    for tp in &partitions {
        let keep = previous_owner.get(tp).filter(|owner| subscriptions.get(**owner).is_some_and(|s| s.contains(&tp.0)) && target[**owner].len() < share[**owner]);
        match keep {
            Some(owner) => {
                target.get_mut(*owner).expect("member").insert(tp.clone());
            }
            None => rest.push(tp.clone()),
        }
    }
    for tp in rest {
        let best = candidates(&tp).into_iter().min_by_key(|id| (target[*id].len() as i64 - share[*id] as i64, target[*id].len(), *id)).cloned();
        if let Some(best) = best {
            target.get_mut(&best).expect("member").insert(tp);
        }
    }
    target
}

/// Moves one member towards its target, never handing it a partition
/// another member holds or still has to revoke.
fn reconcile(group: &mut Group, member_id: &str, now_ms: u64) {
    let assignment_epoch = group.assignment_epoch;
    let target = group.target.get(member_id).cloned().unwrap_or_default();
    let held_by_others: Assignment = group
        .members
        .iter()
        .filter(|(id, _)| id.as_str() != member_id)
        .flat_map(|(_, m)| m.assigned.iter().chain(m.pending_revocation.iter()).cloned())
        .collect();
    let member = group.members.get_mut(member_id).expect("reconciled member exists");
    if !member.pending_revocation.is_empty() {
        if member.owned.is_disjoint(&member.pending_revocation) {
            member.pending_revocation.clear();
            member.revocation_deadline_ms = None;
        } else {
            return;
        }
    }
    if member.state == MemberState::Stable && member.member_epoch == assignment_epoch {
        return;
    }
    let revoke: Assignment = member.assigned.difference(&target).cloned().collect();
    if !revoke.is_empty() {
        member.assigned = member.assigned.intersection(&target).cloned().collect();
        member.state = MemberState::UnrevokedPartitions;
        member.revocation_deadline_ms = Some(now_ms.saturating_add(member.rebalance_timeout_ms.max(0) as u64));
        // Even if this heartbeat's `owned` lacks them, the member may be
        // about to take them up from an earlier answer: only a later
        // heartbeat, sent after it read this answer, releases them.
        member.pending_revocation = revoke;
        return;
    }
    let wanted: Assignment = target.difference(&member.assigned).cloned().collect();
    let (free, unreleased): (Assignment, Assignment) = wanted.into_iter().partition(|tp| !held_by_others.contains(tp));
    member.assigned.extend(free);
    if member.member_epoch != assignment_epoch {
        assert!(member.member_epoch < assignment_epoch, "member epochs only grow");
        member.previous_member_epoch = member.member_epoch;
        member.member_epoch = assignment_epoch;
    }
    member.state = if unreleased.is_empty() { MemberState::Stable } else { MemberState::UnreleasedPartitions };
}

fn check_invariants(group: &Group) {
    assert!(group.assignment_epoch <= group.group_epoch, "assignment epoch {} past group epoch {}", group.assignment_epoch, group.group_epoch);
    let mut seen: BTreeMap<&TopicPartition, &String> = BTreeMap::new();
    for (id, member) in &group.members {
        assert!(member.member_epoch <= group.assignment_epoch, "member {id} epoch {} past assignment epoch {}", member.member_epoch, group.assignment_epoch);
        assert!(member.assigned.is_disjoint(&member.pending_revocation), "member {id} both holds and revokes a partition");
        for tp in member.assigned.iter().chain(member.pending_revocation.iter()) {
            if let Some(other) = seen.insert(tp, id) {
                panic!("partition {tp:?} held by both {other} and {id}");
            }
        }
    }
}
