//! The protocol: roles, elections, replication, commitment, reads.
//!
//! [`RaftNode`] reacts to four inputs (`tick`, `step`, `propose`,
//! `read_index`) plus local compaction, and accumulates its outputs until the
//! driver takes them with [`RaftNode::ready`] and confirms them with
//! [`RaftNode::advance`]. It never blocks, never reads a clock and draws
//! randomness only from the seeded RNG it was given, so the same inputs give
//! the same outputs, bit for bit.

use std::collections::{BTreeMap, VecDeque};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::config::{RaftConfig, RaftError};
use super::log::RaftLog;
use super::progress::{Progress, ReplicationState};
use super::types::{
    Entry, EntryId, EntryKind, HardState, LogIndex, Message, MessageBody, NodeId, ReadState, Ready,
    RecoveredState, RejectHint, Snapshot, Term,
};

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes; the term has not been incremented yet.
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads the current term.
    Leader,
}

/// A read waiting for a quorum to confirm the leader's leadership.
#[derive(Debug, Clone)]
struct PendingRead {
    ctx: Vec<u8>,
    index: LogIndex,
    round: u64,
}

/// What a handed-out [`Ready`] will have made true once advanced.
#[derive(Debug, Clone)]
struct InFlight {
    hard_state: HardState,
    last_entry: Option<LogIndex>,
    applied_to: LogIndex,
    restored_snapshot: bool,
    snapshot_index: Option<LogIndex>,
}

/// One Raft node's state machine. See the [module docs](crate::raft).
#[derive(Debug)]
pub struct RaftNode {
    config: RaftConfig,
    rng: ChaCha8Rng,
    role: Role,
    term: Term,
    voted_for: Option<NodeId>,
    leader_id: Option<NodeId>,
    log: RaftLog,
    /// The latest snapshot (kept whole: the leader sends it to laggards).
    snapshot: Option<Snapshot>,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_election_timeout: u32,
    /// Pre-vote or vote answers in the current campaign.
    votes: BTreeMap<NodeId, bool>,
    /// Leader only: one entry per other voter.
    progress: BTreeMap<NodeId, Progress>,
    heartbeat_round: u64,
    /// Reads waiting for quorum confirmation.
    pending_reads: VecDeque<PendingRead>,
    /// Reads received before the leader committed an entry of its own term.
    reads_before_first_commit: Vec<Vec<u8>>,
    messages: Vec<Message>,
    read_states: Vec<ReadState>,
    dropped_reads: Vec<Vec<u8>>,
    persisted_hard_state: HardState,
    /// A snapshot to hand out in the next `Ready`, and whether it restores.
    pending_snapshot: Option<(Snapshot, bool)>,
    in_flight: Option<InFlight>,
    /// Number of elections this node started (real ones, not pre-votes).
    elections_started: u64,
    /// (term, commit index) at the last invariant check: neither may drop.
    invariant_floor: (Term, LogIndex),
}

impl RaftNode {
    /// Creates a node from what storage recovered (use
    /// `RecoveredState::default()` for a brand-new node). The RNG drives
    /// election timeouts only; seed it differently per node.
    pub fn new(config: RaftConfig, recovered: RecoveredState, rng: ChaCha8Rng) -> Result<Self, RaftError> {
        config.validate()?;
        let snapshot_meta = recovered.snapshot.as_ref().map(|s| s.meta).unwrap_or_default();
        let log = RaftLog::recovered(snapshot_meta, recovered.entries).map_err(RaftError::InvalidRecoveredState)?;
        let mut hard_state = recovered.hard_state;
        if log.last_term() > hard_state.term {
            // Storage writes the hard state before the entries, so this only
            // happens with a foreign store; an entry's term is a term we
            // were in, so adopting it is safe (we cast no vote in it that we
            // remember, and none was sent: messages go out after persisting).
            hard_state = HardState { term: log.last_term(), voted_for: None };
        }
        let mut node = Self {
            config,
            rng,
            role: Role::Follower,
            term: hard_state.term,
            voted_for: hard_state.voted_for,
            leader_id: None,
            log,
            snapshot: recovered.snapshot,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            heartbeat_round: 0,
            pending_reads: VecDeque::new(),
            reads_before_first_commit: Vec::new(),
            messages: Vec::new(),
            read_states: Vec::new(),
            dropped_reads: Vec::new(),
            persisted_hard_state: recovered.hard_state,
            pending_snapshot: None,
            in_flight: None,
            elections_started: 0,
            invariant_floor: (0, 0),
        };
        node.reset_election_timer();
        Ok(node)
    }

    // ----- observers -------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Whether this node leads its current term.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    /// Current term (in memory; may be ahead of what is persisted until the
    /// next `Ready` is handled).
    pub fn term(&self) -> Term {
        self.term
    }
    /// Vote cast in the current term.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }
    /// The leader of the current term, if known.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.leader_id
    }
    /// The log (read-only).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    /// The configuration.
    pub fn config(&self) -> &RaftConfig {
        &self.config
    }
    /// The latest snapshot held, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
    /// Leader only: its view of `peer`'s log.
    pub fn progress(&self, peer: NodeId) -> Option<&Progress> {
        self.progress.get(&peer)
    }
    /// How many real elections (term increments by campaigning) this node
    /// started since it was created.
    pub fn elections_started(&self) -> u64 {
        self.elections_started
    }

    // ----- inputs ----------------------------------------------------------

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.assert_not_in_flight();
        self.tick_inner();
        self.check_invariants();
    }

    fn tick_inner(&mut self) {
        self.election_elapsed += 1;
        match self.role {
            Role::Leader => {
                self.heartbeat_elapsed += 1;
                if self.election_elapsed >= self.config.election_tick {
                    self.election_elapsed = 0;
                    if self.config.check_quorum {
                        if !self.quorum_recently_active() {
                            crate::mark!("raft.check_quorum.step_down");
                            tracing::debug!(id = self.id(), term = self.term, "check-quorum failed: stepping down");
                            self.become_follower(self.term, None);
                            return;
                        }
                        for progress in self.progress.values_mut() {
                            progress.recent_active = false;
                        }
                    }
                }
                if self.heartbeat_elapsed >= self.config.heartbeat_tick {
                    self.heartbeat_elapsed = 0;
                    self.broadcast_heartbeat();
                }
            }
            Role::Follower | Role::PreCandidate | Role::Candidate => {
                if self.election_elapsed >= self.randomized_election_timeout {
                    self.campaign();
                }
            }
        }
    }

    /// Starts an election now, as if the election timeout had elapsed (with
    /// a pre-vote round first if configured). No effect on a leader.
    pub fn campaign(&mut self) {
        self.assert_not_in_flight();
        if self.role == Role::Leader {
            return;
        }
        if self.config.prevote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
        self.check_invariants();
    }

    /// Appends a command to the leader's log. Returns where it went; it is
    /// committed when an entry with that index *and term* shows up in
    /// `Ready::committed_entries`.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<EntryId, RaftError> {
        self.assert_not_in_flight();
        if self.role != Role::Leader {
            return Err(RaftError::NotLeader { leader_hint: self.leader_id });
        }
        let id = self.append_own(EntryKind::Normal, data);
        self.broadcast_append();
        self.check_invariants();
        Ok(id)
    }

    /// Requests a linearizable read (ReadIndex, Raft thesis §6.4). Leader
    /// only; the answer arrives as a [`ReadState`] carrying `ctx` once a
    /// quorum confirmed the leadership, or `ctx` shows up in
    /// `Ready::dropped_reads` if leadership is lost first.
    pub fn read_index(&mut self, ctx: Vec<u8>) -> Result<(), RaftError> {
        self.assert_not_in_flight();
        if self.role != Role::Leader {
            return Err(RaftError::NotLeader { leader_hint: self.leader_id });
        }
        if self.log.term(self.log.committed()) != Some(self.term) {
            // Until an entry of our term commits we may not know the real
            // commit index of the cluster.
            self.reads_before_first_commit.push(ctx);
            return Ok(());
        }
        self.start_read(ctx);
        Ok(())
    }

    /// Replaces the log prefix up to `index` (which the state machine has
    /// applied) with a snapshot holding `data`, the state machine's state at
    /// exactly `index`. The snapshot is handed back in the next `Ready` to
    /// be persisted. Returns `Ok(false)` if already compacted that far.
    pub fn compact(&mut self, index: LogIndex, data: Vec<u8>) -> Result<bool, RaftError> {
        self.assert_not_in_flight();
        if index > self.log.applied() {
            return Err(RaftError::CompactBeyondApplied { requested: index, applied: self.log.applied() });
        }
        if index <= self.log.snapshot_index() {
            return Ok(false);
        }
        let meta = self.log.compact_to(index);
        let snapshot = Snapshot { meta, data };
        self.snapshot = Some(snapshot.clone());
        self.pending_snapshot = Some((snapshot, false));
        Ok(true)
    }

    /// Handles a message from a peer. Messages that are stale, misaddressed
    /// or malformed are ignored (never a panic).
    pub fn step(&mut self, msg: Message) {
        self.assert_not_in_flight();
        self.step_inner(msg);
        self.check_invariants();
    }

    fn step_inner(&mut self, msg: Message) {
        if msg.to != self.id() || msg.from == self.id() || !self.config.voters.contains(&msg.from) {
            tracing::debug!(id = self.id(), ?msg, "ignoring misaddressed message");
            return;
        }
        if msg.term > self.term {
            match &msg.body {
                MessageBody::PreVoteRequest { .. } => {}
                MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::VoteRequest { .. } if self.in_leader_lease() => {
                    tracing::debug!(id = self.id(), from = msg.from, "ignoring vote request: leader lease");
                    return;
                }
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => self.become_follower(msg.term, Some(msg.from)),
                _ if self.role == Role::Follower => {
                    // A new term but no leader yet: adopt it without
                    // resetting the election timer (Figure 2: only a leader's
                    // message or a granted vote resets it). Resetting here
                    // lets a node that cannot win keep everyone from
                    // campaigning.
                    self.term = msg.term;
                    self.voted_for = None;
                    self.leader_id = None;
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match &msg.body {
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
                    if self.config.check_quorum || self.config.prevote =>
                {
                    // Tell the stale leader about our term so it steps down;
                    // without this, a node whose term rose in a partition
                    // would ignore the leader forever.
                    self.send(msg.from, MessageBody::HeartbeatResponse { round: 0 });
                }
                MessageBody::PreVoteRequest { .. } => {
                    self.send(msg.from, MessageBody::PreVoteResponse { granted: false });
                }
                _ => {}
            }
            return;
        }
        let from = msg.from;
        match msg.body {
            MessageBody::PreVoteRequest { last_log_index, last_log_term } => {
                let granted = msg.term > self.term
                    && !self.has_live_leader()
                    && self.log.is_up_to_date(last_log_index, last_log_term);
                let term = if granted { msg.term } else { self.term };
                self.send_with_term(from, term, MessageBody::PreVoteResponse { granted });
            }
            MessageBody::VoteRequest { last_log_index, last_log_term } => {
                let can_vote = self.voted_for == Some(from) || (self.voted_for.is_none() && self.leader_id.is_none());
                let granted = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
                if granted {
                    self.voted_for = Some(from);
                    self.election_elapsed = 0;
                }
                self.send(from, MessageBody::VoteResponse { granted });
            }
            MessageBody::PreVoteResponse { granted } => {
                if self.role == Role::PreCandidate && (!granted || msg.term == self.term.saturating_add(1)) {
                    self.record_vote(from, granted);
                }
            }
            MessageBody::VoteResponse { granted } => {
                if self.role == Role::Candidate {
                    self.record_vote(from, granted);
                }
            }
            MessageBody::AppendEntries { prev_log_index, prev_log_term, entries, leader_commit } => {
                if self.follow(from) {
                        self.handle_append(from, prev_log_index, prev_log_term, entries, leader_commit, msg.term);
                }
            }
            MessageBody::Heartbeat { commit, round } => {
                if !self.follow(from) {
                    return;
                }
                // The leader sends min(its commit, our match), so every
                // entry up to `commit` that we hold is the leader's.
                self.log.commit_to(commit.min(self.log.last_index()));
                self.send(from, MessageBody::HeartbeatResponse { round });
            }
            MessageBody::InstallSnapshot { snapshot } => {
                if self.follow(from) {
                    self.handle_snapshot(from, snapshot);
                }
            }
            MessageBody::AppendEntriesResponse { result } => {
                if self.role == Role::Leader {
                    self.handle_append_response(from, result);
                }
            }
            MessageBody::HeartbeatResponse { round } => {
                if self.role == Role::Leader {
                    self.handle_heartbeat_response(from, round);
                }
            }
        }
    }

    // ----- output ----------------------------------------------------------

    /// Whether [`RaftNode::ready`] would return something.
    pub fn has_ready(&self) -> bool {
        self.in_flight.is_none()
            && (!self.messages.is_empty()
                || self.hard_state() != self.persisted_hard_state
                || !self.log.unpersisted().is_empty()
                || self.pending_snapshot.is_some()
                || !self.log.unapplied().is_empty()
                || !self.read_states.is_empty()
                || !self.dropped_reads.is_empty())
    }

    /// Takes the pending outputs. Returns `None` if there are none. After a
    /// `Some`, the driver must handle it and call [`RaftNode::advance`]
    /// before calling any other input method.
    pub fn ready(&mut self) -> Option<Ready> {
        assert!(self.in_flight.is_none(), "raft: ready() called twice without advance()");
        if !self.has_ready() {
            return None;
        }
        let hard_state = self.hard_state();
        let (snapshot, restore_snapshot) = match self.pending_snapshot.take() {
            Some((snapshot, restore)) => (Some(snapshot), restore),
            None => (None, false),
        };
        let entries = self.log.unpersisted().to_vec();
        let committed_entries = self.log.unapplied().to_vec();
        let applied_to = if restore_snapshot {
            self.log.snapshot_index()
        } else {
            committed_entries.last().map_or(self.log.applied(), |e| e.index)
        };
        self.in_flight = Some(InFlight {
            hard_state,
            last_entry: entries.last().map(|e| e.index),
            applied_to,
            restored_snapshot: restore_snapshot,
            snapshot_index: snapshot.as_ref().map(|s| s.meta.last_index),
        });
        Some(Ready {
            snapshot,
            restore_snapshot,
            hard_state: (hard_state != self.persisted_hard_state).then_some(hard_state),
            entries,
            messages: std::mem::take(&mut self.messages),
            committed_entries,
            read_states: std::mem::take(&mut self.read_states),
            dropped_reads: std::mem::take(&mut self.dropped_reads),
        })
    }

    /// Confirms the last `Ready` was handled: persisted and synced, messages
    /// sent, committed entries applied.
    pub fn advance(&mut self) {
        let in_flight = self.in_flight.take().expect("raft: advance() without a ready()");
        debug_assert!(in_flight.hard_state.term >= self.persisted_hard_state.term, "raft: persisted term decreased");
        self.persisted_hard_state = in_flight.hard_state;
        if in_flight.restored_snapshot {
            self.log.restored_snapshot_persisted();
        }
        if let Some(index) = in_flight.snapshot_index {
            self.log.persisted_to(index);
        }
        if let Some(index) = in_flight.last_entry {
            self.log.persisted_to(index);
        }
        self.log.applied_to(in_flight.applied_to);
        if self.role == Role::Leader {
            // Our own entries count toward commitment only once durable.
            self.maybe_commit();
        }
        self.check_invariants();
    }

    // ----- roles -----------------------------------------------------------

    fn hard_state(&self) -> HardState {
        HardState { term: self.term, voted_for: self.voted_for }
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let base = self.config.election_tick;
        self.randomized_election_timeout = self.rng.gen_range(base..2 * base);
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "raft: term must never decrease");
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        self.abandon_leadership();
        self.role = Role::Follower;
        self.leader_id = leader;
        self.reset_election_timer();
    }

    /// Accepts `leader` as the leader of the current term. Returns false
    /// (and ignores the message) if we lead this term ourselves: that would
    /// be two leaders in one term, impossible between correct nodes, so the
    /// message is not trusted (the cluster tests check election safety).
    fn follow(&mut self, leader: NodeId) -> bool {
        if self.role == Role::Leader {
            tracing::error!(id = self.id(), leader, term = self.term, "leader message from another leader of our term");
            return false;
        }
        if self.role != Role::Follower || self.leader_id != Some(leader) {
            self.become_follower(self.term, Some(leader));
        }
        self.election_elapsed = 0;
        true
    }

    fn abandon_leadership(&mut self) {
        self.progress.clear();
        for read in self.pending_reads.drain(..) {
            self.dropped_reads.push(read.ctx);
        }
        self.dropped_reads.append(&mut self.reads_before_first_commit);
    }

    fn become_pre_candidate(&mut self) {
        self.abandon_leadership();
        self.role = Role::PreCandidate;
        self.leader_id = None;
        self.votes.clear();
        self.reset_election_timer();
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let proposed_term = self.term.saturating_add(1);
        for peer in self.peers() {
            self.send_with_term(peer, proposed_term, MessageBody::PreVoteRequest { last_log_index, last_log_term });
        }
        self.record_vote(self.id(), true);
    }

    fn become_candidate(&mut self) {
        self.abandon_leadership();
        // Saturating: a peer can push us to an absurd term, not to a panic.
        self.term = self.term.saturating_add(1);
        self.voted_for = Some(self.id());
        self.role = Role::Candidate;
        self.leader_id = None;
        self.votes.clear();
        self.elections_started += 1;
        self.reset_election_timer();
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for peer in self.peers() {
            self.send(peer, MessageBody::VoteRequest { last_log_index, last_log_term });
        }
        self.record_vote(self.id(), true);
    }

    fn record_vote(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
        let granted_count = self.votes.values().filter(|g| **g).count();
        let rejected_count = self.votes.len() - granted_count;
        let quorum = self.config.quorum();
        if granted_count >= quorum {
            match self.role {
                Role::PreCandidate => self.become_candidate(),
                Role::Candidate => self.become_leader(),
                _ => {}
            }
        } else if rejected_count >= quorum {
            self.become_follower(self.term, None);
        }
    }

    fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate, "raft: only a candidate becomes leader");
        self.role = Role::Leader;
        self.leader_id = Some(self.id());
        self.reset_election_timer();
        let last_index = self.log.last_index();
        self.progress = self.peers().into_iter().map(|p| (p, Progress::new(last_index))).collect();
        crate::mark!("raft.leader.elected");
        tracing::debug!(id = self.id(), term = self.term, "became leader");
        self.append_own(EntryKind::Noop, Vec::new());
        self.broadcast_append();
    }

    // ----- replication -----------------------------------------------------

    fn peers(&self) -> Vec<NodeId> {
        self.config.voters.iter().copied().filter(|&p| p != self.id()).collect()
    }

    fn append_own(&mut self, kind: EntryKind, data: Vec<u8>) -> EntryId {
        let id = EntryId { term: self.term, index: self.log.last_index() + 1 };
        self.log.append(Entry { term: id.term, index: id.index, kind, data });
        if self.config.voters.len() == 1 {
            // No one to ask; commits once persisted (see advance).
        }
        id
    }

    fn broadcast_append(&mut self) {
        for peer in self.peers() {
            self.send_append(peer, false);
        }
    }

    /// Sends `peer` what it needs next. With `allow_empty`, sends an empty
    /// append (carrying the commit index) even if it is up to date.
    fn send_append(&mut self, peer: NodeId, allow_empty: bool) {
        let Some(progress) = self.progress.get(&peer) else { return };
        if progress.state == ReplicationState::Probe && progress.probe_sent {
            return;
        }
        let next = progress.next_index;
        if next <= self.log.snapshot_index() {
            let Some(snapshot) = self.snapshot.clone() else {
                unreachable!("raft: log compacted without a snapshot")
            };
            let progress = self.progress.get_mut(&peer).expect("progress exists");
            progress.state = ReplicationState::Probe;
            progress.probe_sent = true;
            self.send(peer, MessageBody::InstallSnapshot { snapshot });
            return;
        }
        if next > self.log.last_index() && !allow_empty && progress.state == ReplicationState::Replicate {
            return;
        }
        let prev_log_index = next - 1;
        let prev_log_term = self.log.term(prev_log_index).expect("raft: leader holds prev entry");
        let entries_max = if crate::buggify!("raft.append.single_entry") { 1 } else { self.config.max_entries_per_append as u64 };
        let last = self.log.last_index().min(next - 1 + entries_max);
        let entries = self.log.entries(next, last).to_vec();
        let progress = self.progress.get_mut(&peer).expect("progress exists");
        match progress.state {
            ReplicationState::Replicate => {
                if let Some(e) = entries.last() {
                    progress.next_index = e.index + 1;
                }
            }
            ReplicationState::Probe => progress.probe_sent = true,
        }
        let leader_commit = self.log.committed();
        self.send(peer, MessageBody::AppendEntries { prev_log_index, prev_log_term, entries, leader_commit });
    }

    fn handle_append(
        &mut self,
        leader: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
        leader_term: Term,
    ) {
        // Malformed input is dropped, not asserted.
        let well_formed = prev_log_index <= self.log.last_index()
            && entries.iter().enumerate().all(|(i, e)| Some(e.index) == prev_log_index.checked_add(1 + i as u64))
            && entries.windows(2).all(|w| w[0].term <= w[1].term)
            && entries.iter().all(|e| e.term <= leader_term && e.term >= prev_log_term);
        if prev_log_index > self.log.last_index() {
            // We lack the entry before these: ask for earlier ones.
            let hint = RejectHint {
                rejected_prev_index: prev_log_index,
                conflict_term: None,
                conflict_index: self.log.last_index() + 1,
            };
            self.send(leader, MessageBody::AppendEntriesResponse { result: Err(hint) });
            return;
        }
        if !well_formed {
            tracing::warn!(id = self.id(), leader, "ignoring malformed append");
            return;
        }
        let committed = self.log.committed();
        if prev_log_index < committed {
            // Everything up to our commit index matches any leader's log.
            self.send(leader, MessageBody::AppendEntriesResponse { result: Ok(committed) });
            return;
        }
        match self.log.term(prev_log_index) {
            None => {
                let hint = RejectHint {
                    rejected_prev_index: prev_log_index,
                    conflict_term: None,
                    conflict_index: self.log.last_index() + 1,
                };
                self.send(leader, MessageBody::AppendEntriesResponse { result: Err(hint) });
            }
            Some(term) if term != prev_log_term => {
                crate::mark!("raft.append.reject_conflict_term");
                let hint = RejectHint {
                    rejected_prev_index: prev_log_index,
                    conflict_term: Some(term),
                    conflict_index: self.log.first_index_of_term(term, prev_log_index),
                };
                self.send(leader, MessageBody::AppendEntriesResponse { result: Err(hint) });
            }
            Some(_) => {
                assert!(self.role != Role::Leader, "raft: a leader never overwrites its own log");
                let last_new = prev_log_index + entries.len() as u64;
                self.log.merge(&entries);
                self.log.commit_to(leader_commit.min(last_new));
                self.send(leader, MessageBody::AppendEntriesResponse { result: Ok(last_new) });
            }
        }
    }

    fn handle_snapshot(&mut self, leader: NodeId, snapshot: Snapshot) {
        let meta = snapshot.meta;
        if meta.last_index == 0 || meta.last_term > self.term {
            tracing::warn!(id = self.id(), leader, ?meta, "ignoring malformed snapshot");
            return;
        }
        let committed = self.log.committed();
        if meta.last_index <= committed {
            self.send(leader, MessageBody::AppendEntriesResponse { result: Ok(committed) });
            return;
        }
        if self.log.term(meta.last_index) == Some(meta.last_term) {
            // We hold that entry: our prefix matches, just learn the commit.
            self.log.commit_to(meta.last_index);
        } else {
            crate::mark!("raft.snapshot.install");
            tracing::debug!(id = self.id(), index = meta.last_index, "restoring snapshot from leader");
            self.log.restore(&snapshot);
            self.snapshot = Some(snapshot.clone());
            self.pending_snapshot = Some((snapshot, true));
        }
        self.send(leader, MessageBody::AppendEntriesResponse { result: Ok(meta.last_index) });
    }

    fn handle_append_response(&mut self, from: NodeId, result: Result<LogIndex, RejectHint>) {
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.recent_active = true;
        match result {
            Ok(match_index) => {
                if match_index > last_index {
                    tracing::warn!(from, match_index, "ignoring append response beyond our log");
                    return;
                }
                if progress.on_match(match_index) {
                    self.maybe_commit();
                }
            }
            Err(hint) => {
                let stale = match progress.state {
                    ReplicationState::Replicate => hint.rejected_prev_index <= progress.match_index,
                    ReplicationState::Probe => hint.rejected_prev_index.checked_add(1) != Some(progress.next_index),
                };
                if stale {
                    return;
                }
                let mut next = match hint.conflict_term {
                    Some(term) => match self.log.last_index_of_term(term, hint.rejected_prev_index) {
                        Some(index) => index.saturating_add(1),
                        None => hint.conflict_index,
                    },
                    None => hint.conflict_index,
                };
                let progress = self.progress.get_mut(&from).expect("progress exists");
                // Strictly backwards, never below what is known to match,
                // never past our log (the hint comes from the network).
                next = next.min(hint.rejected_prev_index).min(last_index + 1).max(progress.match_index + 1);
                progress.next_index = next;
                progress.state = ReplicationState::Probe;
                progress.probe_sent = false;
            }
        }
        let progress = &self.progress[&from];
        if progress.match_index < self.log.last_index() {
            self.send_append(from, false);
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.recent_active = true;
        progress.probe_sent = false;
        progress.acked_round = progress.acked_round.max(round);
        if progress.match_index < self.log.last_index() {
            // In Replicate state the entries may have been lost: an append
            // (empty if we think everything is in flight) makes the follower
            // either confirm or reject with a hint.
            self.send_append(from, true);
        }
        self.confirm_reads();
    }

    fn broadcast_heartbeat(&mut self) {
        self.heartbeat_round += 1;
        let round = self.heartbeat_round;
        let committed = self.log.committed();
        let targets: Vec<(NodeId, LogIndex)> =
            self.progress.iter().map(|(&p, pr)| (p, pr.match_index.min(committed))).collect();
        for (peer, commit) in targets {
            self.send(peer, MessageBody::Heartbeat { commit, round });
        }
    }

    /// Commits the highest index a quorum stores, if it is from our term
    /// (§5.4.2) or the Figure 8 teaching knob is on.
    fn maybe_commit(&mut self) {
        let mut matches: Vec<LogIndex> = self.progress.values().map(|p| p.match_index).collect();
        matches.push(self.log.persisted());
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_index = matches[self.config.quorum() - 1];
        if quorum_index <= self.log.committed() {
            return;
        }
        let term = self.log.term(quorum_index);
        if term == Some(self.term) || (self.config.commit_old_term_entries_by_count && term.is_some()) {
            let first_commit_in_term = self.log.term(self.log.committed()) != Some(self.term);
            self.log.commit_to(quorum_index);
            if first_commit_in_term && term == Some(self.term) {
                for ctx in std::mem::take(&mut self.reads_before_first_commit) {
                    self.start_read(ctx);
                }
            }
            // Tell followers promptly rather than at the next heartbeat.
            for peer in self.peers() {
                self.send_append(peer, true);
            }
        }
    }

    // ----- reads -----------------------------------------------------------

    fn start_read(&mut self, ctx: Vec<u8>) {
        let index = self.log.committed();
        if self.config.quorum() == 1 {
            self.read_states.push(ReadState { ctx, index });
            return;
        }
        self.broadcast_heartbeat();
        self.pending_reads.push_back(PendingRead { ctx, index, round: self.heartbeat_round });
    }

    fn confirm_reads(&mut self) {
        while let Some(read) = self.pending_reads.front() {
            let acks = 1 + self.progress.values().filter(|p| p.acked_round >= read.round).count();
            if acks < self.config.quorum() {
                break;
            }
            let read = self.pending_reads.pop_front().expect("front exists");
            self.read_states.push(ReadState { ctx: read.ctx, index: read.index });
        }
    }

    // ----- helpers ---------------------------------------------------------

    fn quorum_recently_active(&self) -> bool {
        1 + self.progress.values().filter(|p| p.recent_active).count() >= self.config.quorum()
    }

    /// Heard from a leader (or are one) within the minimum election timeout.
    fn has_live_leader(&self) -> bool {
        self.leader_id.is_some() && self.election_elapsed < self.config.election_tick
    }

    fn in_leader_lease(&self) -> bool {
        self.config.check_quorum && self.has_live_leader()
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        self.messages.push(Message { from: self.id(), to, term, body });
    }

    /// Cheap invariants, checked after every input. Any failure is a bug in
    /// this module (inputs from the network are validated before use).
    fn check_invariants(&mut self) {
        let (floor_term, floor_commit) = self.invariant_floor;
        let committed = self.log.committed();
        assert!(self.term >= floor_term, "raft: term decreased from {floor_term} to {}", self.term);
        assert!(committed >= floor_commit, "raft: commit index decreased from {floor_commit} to {committed}");
        assert!(committed <= self.log.last_index(), "raft: commit index beyond the log");
        assert!(self.log.applied() <= committed, "raft: applied beyond commit");
        assert!(self.log.last_term() <= self.term, "raft: log holds an entry from a future term");
        match self.role {
            Role::Leader => {
                assert_eq!(self.leader_id, Some(self.id()), "raft: leader does not know itself");
                assert_eq!(self.voted_for, Some(self.id()), "raft: leader did not vote for itself");
                assert_eq!(self.log.last_term(), self.term, "raft: leader log lacks its own term");
            }
            Role::Candidate => assert_eq!(self.voted_for, Some(self.id()), "raft: candidate did not vote for itself"),
            Role::PreCandidate | Role::Follower => assert!(self.progress.is_empty()),
        }
        self.invariant_floor = (self.term, committed);
    }

    fn assert_not_in_flight(&self) {
        assert!(self.in_flight.is_none(), "raft: input while a Ready is outstanding (call advance first)");
    }
}
