//! Property tests of the sans-IO replication core (`broker::replication`):
//! three replicas of one partition, an in-test network for fetches that
//! drops, duplicates, delays and reorders them, a model KRaft controller,
//! crashes that lose unflushed records, and leader changes.
//!
//! The model controller holds the authoritative leader, leader epoch,
//! partition epoch and ISR. It accepts an AlterPartition only from the
//! current leader, in its leader epoch, based on the current partition
//! epoch, and never adds a crashed (fenced) replica (KIP-841). A crashed
//! replica is fenced and removed from the ISR at once, as KRaft does for a
//! fenced broker; if the leader crashed, the controller elects another ISR
//! member (bumping the leader epoch), or leaves the partition offline until
//! an ISR member returns. Partition metadata reaches live replicas at once
//! (no propagation lag). A crash also resets the replica's connections:
//! its in-flight fetches and responses vanish. The controller also refuses
//! an ISR expansion naming a replica that restarted since the leader saw it
//! fetch (KIP-903 broker epochs; the leader side of it is modelled here in
//! the test, not in the core): without that, a follower could catch up,
//! crash losing records outside the ISR, restart, and be added on the
//! strength of its pre-crash fetch.
//!
//! Crash model: records above the last flush may be lost (the crash keeps a
//! random length between the flushed point and the log end), as Kafka acks
//! from followers without fsync. Kafka cannot survive every ISR member
//! losing committed records at once, so the *last* ISR member never loses
//! data: its crash is modelled as a clean shutdown (KIP-966's territory).
//!
//! Checked after every step:
//! - a leader's high watermark never decreases within its leader epoch;
//! - it never passes the log end of any live member of the ISR;
//! - committed records (below some leader's high watermark) never change,
//!   and every live ISR member and every leader holds all of them; every
//!   acknowledged acks=all record is committed;
//! - a follower that the leader confirmed in sync (truncation complete) has
//!   a log that is a prefix of its leader's;
//! - the core's log end and epoch cache match the real records.
//! After the faults stop, all replicas converge to the leader's log and the
//! ISR grows back to all replicas.
//!
//! Scripted: KIP-101's lost-acknowledged-record scenario, once with the
//! default epoch-based truncation (safe) and once with the
//! `truncate_to_high_watermark` teaching knob (loses the records, and the
//! replicas end up in one ISR with different records at the same offsets).
//!
//! Run: `cargo test -p dlog-broker --test replication_core` (128 cases by
//! default, about 2 s in debug); longer: `PROPTEST_CASES=5000 cargo test -p
//! dlog-broker --test replication_core` (about a minute). Set
//! `REPLICATION_TRUNCATE_TO_HW=1` to turn the knob on in the random search
//! and watch it fail; `REPLICATION_TEST_STATS=1` prints per-case coverage.

use std::collections::{BTreeMap, BTreeSet};

use broker::replication::{
    BatchInfo, EpochEntry, FetchAnswer, FetchResponse, FollowerDecision, FollowerFetch, FollowerState,
    LeaderEffect, LeaderState, LocalLog, MetadataVerdict, PartitionMetadata, ReplicaId, ReplicationConfig,
};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    epoch: i32,
    value: u64,
}

#[derive(Debug)]
enum Role {
    Down,
    /// Alive, no leader to follow (partition offline).
    Idle(LocalLog),
    Leader(LeaderState),
    Follower(FollowerState),
}

#[derive(Debug)]
struct Replica {
    log: Vec<Rec>,
    flushed: usize,
    /// Last high watermark this replica knew (its lazy checkpoint).
    hw_checkpoint: i64,
    role: Role,
}

#[derive(Debug)]
enum Msg {
    Fetch { from: ReplicaId, to: ReplicaId, fetch: FollowerFetch },
    Response { to: ReplicaId, response: FetchResponse, records: Vec<Rec> },
}

#[derive(Debug, Clone)]
struct Alter {
    from: ReplicaId,
    leader_epoch: i32,
    new_isr: BTreeSet<ReplicaId>,
    partition_epoch: i32,
    /// Incarnations of the proposed members as the leader saw them (KIP-903:
    /// a fetch carries the follower's broker epoch, so a proposal based on a
    /// fetch from before a restart names the old one).
    incarnations: BTreeMap<ReplicaId, u64>,
}

#[derive(Debug, Clone)]
struct Controller {
    leader: Option<ReplicaId>,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: BTreeSet<ReplicaId>,
    /// Broker epoch of each replica, bumped when it restarts.
    incarnation: BTreeMap<ReplicaId, u64>,
}

struct Cluster {
    config: ReplicationConfig,
    ids: Vec<ReplicaId>,
    replicas: BTreeMap<ReplicaId, Replica>,
    controller: Controller,
    network: Vec<Msg>,
    alters: Vec<Alter>,
    now_ms: u64,
    min_insync_replicas: usize,
    max_fetch_records: usize,
    next_value: u64,
    next_request: u64,
    /// request id -> (first offset, records) of acks=all produce waiting.
    produce_waiting: BTreeMap<u64, (usize, Vec<Rec>)>,
    acked: BTreeMap<usize, Rec>,
    committed: BTreeMap<usize, Rec>,
    hw_floor: BTreeMap<(ReplicaId, i32), i64>,
    violations: Vec<String>,
    /// Coverage counters: divergence truncations, accepted ISR changes.
    truncations: u64,
    isr_changes: u64,
}

fn epoch_entries(log: &[Rec]) -> Vec<EpochEntry> {
    let mut entries: Vec<EpochEntry> = Vec::new();
    for (offset, rec) in log.iter().enumerate() {
        if entries.last().map(|e| e.epoch) != Some(rec.epoch) {
            entries.push(EpochEntry { epoch: rec.epoch, start_offset: offset as i64 });
        }
    }
    entries
}

impl Cluster {
    fn new(size: i32, config: ReplicationConfig, min_insync_replicas: usize, max_fetch_records: usize) -> Self {
        let ids: Vec<ReplicaId> = (1..=size).collect();
        let replicas = ids
            .iter()
            .map(|&id| (id, Replica { log: Vec::new(), flushed: 0, hw_checkpoint: 0, role: Role::Idle(LocalLog::empty()) }))
            .collect();
        let controller =
            Controller {
            leader: None,
            leader_epoch: -1,
            partition_epoch: 0,
            isr: ids.iter().copied().collect(),
            incarnation: ids.iter().map(|&id| (id, 0)).collect(),
        };
        let mut cluster = Self {
            config,
            ids,
            replicas,
            controller,
            network: Vec::new(),
            alters: Vec::new(),
            now_ms: 0,
            min_insync_replicas,
            max_fetch_records,
            next_value: 0,
            next_request: 0,
            produce_waiting: BTreeMap::new(),
            acked: BTreeMap::new(),
            committed: BTreeMap::new(),
            hw_floor: BTreeMap::new(),
            violations: Vec::new(),
            truncations: 0,
            isr_changes: 0,
        };
        cluster.elect(Some(1));
        cluster
    }

    fn violation(&mut self, what: String) {
        if !self.violations.contains(&what) {
            self.violations.push(what);
        }
    }

    fn metadata(&self) -> PartitionMetadata {
        PartitionMetadata {
            leader: self.controller.leader,
            leader_epoch: self.controller.leader_epoch,
            partition_epoch: self.controller.partition_epoch,
            isr: self.controller.isr.clone(),
        }
    }

    fn alive(&self, id: ReplicaId) -> bool {
        !matches!(self.replicas[&id].role, Role::Down)
    }

    fn leader_id(&self) -> Option<ReplicaId> {
        self.controller.leader.filter(|&id| matches!(self.replicas[&id].role, Role::Leader(_)))
    }

    /// The controller makes `leader` the leader in a new leader epoch.
    fn elect(&mut self, leader: Option<ReplicaId>) {
        assert!(leader.is_none_or(|id| self.controller.isr.contains(&id)), "only ISR members are eligible");
        self.controller.leader = leader;
        self.controller.leader_epoch += 1;
        self.controller.partition_epoch += 1;
        self.push_metadata();
    }

    /// Delivers the controller's state to every live replica.
    fn push_metadata(&mut self) {
        let metadata = self.metadata();
        for id in self.ids.clone() {
            let replica = self.replicas.get_mut(&id).expect("replica");
            let role = std::mem::replace(&mut replica.role, Role::Down);
            let mut effects = Vec::new();
            let local = match role {
                Role::Down => continue,
                Role::Leader(mut leader) => match leader.on_metadata(&metadata) {
                    MetadataVerdict::StillLeader | MetadataVerdict::Stale => {
                        effects = leader.drain_effects();
                        replica.role = Role::Leader(leader);
                        self.handle_leader_effects(id, effects);
                        continue;
                    }
                    MetadataVerdict::Resign => {
                        let (local, final_effects) = leader.resign();
                        effects = final_effects;
                        local
                    }
                },
                Role::Follower(follower) => {
                    if metadata.leader == Some(follower.leader_id()) && metadata.leader_epoch == follower.leader_epoch()
                    {
                        replica.role = Role::Follower(follower);
                        continue;
                    }
                    follower.into_local_log()
                }
                Role::Idle(local) => local,
            };
            replica.role = match metadata.leader {
                Some(leader) if leader == id => Role::Leader(LeaderState::new(
                    self.config.clone(),
                    id,
                    self.ids.iter().copied().collect(),
                    &metadata,
                    local,
                    self.now_ms,
                )),
                Some(leader) => {
                    let (follower, truncated) =
                        FollowerState::new(self.config.clone(), id, leader, metadata.leader_epoch, local);
                    if let Some(offset) = truncated {
                        replica.log.truncate(offset as usize);
                        replica.flushed = replica.flushed.min(offset as usize);
                    }
                    Role::Follower(follower)
                }
                None => Role::Idle(local),
            };
            self.handle_leader_effects(id, effects);
        }
    }

    fn drain_leader(&mut self, id: ReplicaId) {
        if let Role::Leader(leader) = &mut self.replicas.get_mut(&id).expect("replica").role {
            let effects = leader.drain_effects();
            self.handle_leader_effects(id, effects);
        }
    }

    fn handle_leader_effects(&mut self, id: ReplicaId, effects: Vec<LeaderEffect>) {
        for effect in effects {
            match effect {
                LeaderEffect::ProposeIsr { new_isr, partition_epoch } => {
                    let Role::Leader(leader) = &self.replicas[&id].role else { panic!("ProposeIsr from a non-leader") };
                    let leader_epoch = leader.leader_epoch();
                    let incarnations = new_isr.iter().map(|id| (*id, self.controller.incarnation[id])).collect();
                    self.alters.push(Alter { from: id, leader_epoch, new_isr, partition_epoch, incarnations });
                }
                LeaderEffect::HighWatermarkAdvanced(hw) => {
                    self.replicas.get_mut(&id).expect("replica").hw_checkpoint = hw;
                }
                LeaderEffect::CompleteProduce { request_id, result } => {
                    let (first, records) = self.produce_waiting.remove(&request_id).expect("known request");
                    if result.is_ok() {
                        let replica = &self.replicas[&id];
                        let Role::Leader(leader) = &replica.role else { panic!("acked by a non-leader") };
                        let end = first + records.len();
                        if (leader.high_watermark() as usize) < end || replica.log.get(first..end) != Some(&records[..]) {
                            self.violation(format!("produce {request_id} acked but not in leader {id}'s committed log"));
                        }
                        for (i, rec) in records.into_iter().enumerate() {
                            self.acked.insert(first + i, rec);
                        }
                    }
                }
            }
        }
    }

    // ----- actions -----------------------------------------------------------

    fn produce(&mut self, count: usize) {
        let Some(id) = self.leader_id() else { return };
        let now_ms = self.now_ms;
        let replica = self.replicas.get_mut(&id).expect("replica");
        let Role::Leader(leader) = &mut replica.role else { unreachable!() };
        if leader.check_enough_replicas(self.min_insync_replicas).is_err() {
            return;
        }
        let first = replica.log.len();
        let epoch = leader.leader_epoch();
        let records: Vec<Rec> = (0..count)
            .map(|i| Rec { epoch, value: self.next_value + i as u64 })
            .collect();
        self.next_value += count as u64;
        replica.log.extend(records.iter().copied());
        leader.on_local_append(replica.log.len() as i64);
        let request_id = self.next_request;
        self.next_request += 1;
        self.produce_waiting.insert(request_id, (first, records));
        if leader.try_append_acks_all(request_id, replica.log.len() as i64, self.min_insync_replicas, now_ms + 500).is_err() {
            self.produce_waiting.remove(&request_id);
        }
        self.drain_leader(id);
    }

    fn send_fetch(&mut self, id: ReplicaId) {
        if let Role::Follower(follower) = &self.replicas[&id].role {
            self.network.push(Msg::Fetch { from: id, to: follower.leader_id(), fetch: follower.fetch_request() });
        }
    }

    fn deliver(&mut self, index: usize) {
        if self.network.is_empty() {
            return;
        }
        let message = self.network.remove(index % self.network.len());
        self.deliver_message(message);
    }

    fn deliver_message(&mut self, message: Msg) {
        match message {
            Msg::Fetch { from, to, fetch } => {
                let now_ms = self.now_ms;
                let max = self.max_fetch_records;
                let replica = self.replicas.get_mut(&to).expect("replica");
                let Role::Leader(leader) = &mut replica.role else { return };
                let leader_epoch = leader.leader_epoch();
                let Ok(answer) = leader.on_follower_fetch(&fetch, now_ms) else { return };
                let (response, records) = match answer {
                    FetchAnswer::Records { fetch_offset, log_end_offset, high_watermark } => {
                        let start = fetch_offset as usize;
                        let end = (log_end_offset as usize).min(start + max);
                        let records = replica.log[start..end].to_vec();
                        let mut batches: Vec<BatchInfo> = Vec::new();
                        for (i, rec) in records.iter().enumerate() {
                            let offset = (start + i) as i64;
                            match batches.last_mut() {
                                Some(b) if b.leader_epoch == rec.epoch => b.last_offset = offset,
                                _ => batches.push(BatchInfo { base_offset: offset, last_offset: offset, leader_epoch: rec.epoch }),
                            }
                        }
                        let response = FetchResponse { leader_epoch, fetch_offset, high_watermark, diverging_epoch: None, batches };
                        (response, records)
                    }
                    FetchAnswer::Diverging { diverging_epoch, high_watermark } => {
                        let response = FetchResponse {
                            leader_epoch,
                            fetch_offset: fetch.fetch_offset,
                            high_watermark,
                            diverging_epoch: Some(diverging_epoch),
                            batches: Vec::new(),
                        };
                        (response, Vec::new())
                    }
                };
                self.network.push(Msg::Response { to: from, response, records });
                self.drain_leader(to);
            }
            Msg::Response { to, response, records } => {
                let replica = self.replicas.get_mut(&to).expect("replica");
                let Role::Follower(follower) = &mut replica.role else { return };
                match follower.on_fetch_response(&response) {
                    FollowerDecision::Append { new_log_end_offset } => {
                        assert_eq!(replica.log.len() as i64, response.fetch_offset);
                        replica.log.extend(records);
                        assert_eq!(replica.log.len() as i64, new_log_end_offset);
                    }
                    FollowerDecision::TruncateTo { offset } => {
                        if (offset as usize) < replica.log.len() {
                            self.truncations += 1;
                        }
                        replica.log.truncate(offset as usize);
                        replica.flushed = replica.flushed.min(replica.log.len());
                    }
                    FollowerDecision::Ignore => {}
                }
                replica.hw_checkpoint = follower.high_watermark();
            }
        }
    }

    fn tick(&mut self, advance_ms: u64) {
        self.now_ms += advance_ms;
        for id in self.ids.clone() {
            if let Role::Leader(leader) = &mut self.replicas.get_mut(&id).expect("replica").role {
                leader.tick(self.now_ms);
            }
            self.drain_leader(id);
        }
    }

    /// The controller handles one AlterPartition.
    fn controller_step(&mut self, index: usize) {
        if self.alters.is_empty() {
            return;
        }
        let alter = self.alters.remove(index % self.alters.len());
        let accept = self.controller.leader == Some(alter.from)
            && self.controller.leader_epoch == alter.leader_epoch
            && self.controller.partition_epoch == alter.partition_epoch
            && alter.new_isr.contains(&alter.from)
            && alter.new_isr.iter().all(|&id| self.alive(id))
            && alter.incarnations.iter().all(|(id, incarnation)| self.controller.incarnation[id] == *incarnation);
        if accept {
            self.controller.isr = alter.new_isr;
            self.controller.partition_epoch += 1;
            self.isr_changes += 1;
            self.push_metadata();
        } else if let Role::Leader(leader) = &mut self.replicas.get_mut(&alter.from).expect("replica").role {
            // Refused without a newer state to show (a fenced replica in it):
            // the leader may try again. A refusal of an older proposal must
            // not cancel a newer one.
            let same = leader.leader_epoch() == alter.leader_epoch
                && leader.pending_isr().is_some_and(|p| p.new_isr == alter.new_isr && p.base_partition_epoch == alter.partition_epoch);
            if same {
                leader.on_alter_partition_failed();
            }
        }
    }

    fn flush(&mut self, id: ReplicaId) {
        let replica = self.replicas.get_mut(&id).expect("replica");
        replica.flushed = replica.log.len();
    }

    /// Crashes `id`; it keeps `keep` of its unflushed records (modulo).
    fn crash(&mut self, id: ReplicaId, keep: usize) {
        if !self.alive(id) {
            return;
        }
        let last_isr_member = self.controller.isr.len() == 1 && self.controller.isr.contains(&id);
        let replica = self.replicas.get_mut(&id).expect("replica");
        if let Role::Leader(leader) = std::mem::replace(&mut replica.role, Role::Down) {
            let (_, effects) = leader.resign();
            self.handle_leader_effects(id, effects);
        }
        let replica = self.replicas.get_mut(&id).expect("replica");
        if !last_isr_member {
            let unflushed = replica.log.len() - replica.flushed;
            replica.log.truncate(replica.flushed + keep % (unflushed + 1));
        }
        self.network.retain(|m| match m {
            Msg::Fetch { from, to, .. } => *from != id && *to != id,
            Msg::Response { to, .. } => *to != id,
        });
        // The controller fences it: out of the ISR (unless it is the last
        // member), and a new leader if it led.
        if !last_isr_member && self.controller.isr.remove(&id) {
            self.controller.partition_epoch += 1;
        }
        if self.controller.leader == Some(id) {
            let next = self.controller.isr.iter().copied().find(|&other| other != id && self.alive(other));
            self.elect(next);
        } else {
            self.push_metadata();
        }
    }

    fn restart(&mut self, id: ReplicaId) {
        let replica = self.replicas.get_mut(&id).expect("replica");
        if !matches!(replica.role, Role::Down) {
            return;
        }
        replica.flushed = replica.log.len();
        let local = LocalLog::recover(0, replica.log.len() as i64, replica.hw_checkpoint, epoch_entries(&replica.log))
            .expect("recoverable");
        replica.hw_checkpoint = local.high_watermark();
        replica.role = Role::Idle(local);
        *self.controller.incarnation.get_mut(&id).expect("replica") += 1;
        if self.controller.leader.is_none() && self.controller.isr.contains(&id) {
            self.elect(Some(id));
        } else {
            self.push_metadata();
        }
    }

    /// Controlled leader change to another live ISR member.
    fn move_leader(&mut self, pick: usize) {
        let candidates: Vec<ReplicaId> = self
            .controller
            .isr
            .iter()
            .copied()
            .filter(|&id| Some(id) != self.controller.leader && self.alive(id))
            .collect();
        if !candidates.is_empty() {
            self.elect(Some(candidates[pick % candidates.len()]));
        }
    }

    // ----- invariants ----------------------------------------------------------

    fn check(&mut self) {
        let mut found = Vec::new();
        for (&id, replica) in &self.replicas {
            let local = match &replica.role {
                Role::Down => continue,
                Role::Idle(local) => local,
                Role::Leader(leader) => leader.local_log(),
                Role::Follower(follower) => follower.local_log(),
            };
            let end = local.log_end_offset();
            if end != replica.log.len() as i64 {
                found.push(format!("replica {id}: core log end {end} but {} records", replica.log.len()));
            }
            let cached: Vec<EpochEntry> =
                local.epoch_cache().entries().iter().copied().filter(|e| e.start_offset < end).collect();
            if cached != epoch_entries(&replica.log) {
                found.push(format!("replica {id}: epoch cache {cached:?} does not match its records"));
            }
        }
        let live_isr: Vec<ReplicaId> = self.controller.isr.iter().copied().filter(|&id| self.alive(id)).collect();
        for (&id, replica) in &self.replicas {
            let Role::Leader(leader) = &replica.role else { continue };
            let hw = leader.high_watermark();
            let floor = self.hw_floor.entry((id, leader.leader_epoch())).or_insert(hw);
            if hw < *floor {
                found.push(format!("leader {id} epoch {}: high watermark went down {floor} -> {hw}", leader.leader_epoch()));
            }
            *floor = hw;
            for &member in &live_isr {
                let member_end = self.replicas[&member].log.len() as i64;
                if member_end < hw {
                    found.push(format!("leader {id} high watermark {hw} passes ISR member {member}'s log end {member_end}"));
                }
            }
            for offset in 0..hw as usize {
                let rec = replica.log[offset];
                match self.committed.get(&offset) {
                    Some(&old) if old != rec => {
                        found.push(format!("committed record at {offset} changed {old:?} -> {rec:?} (leader {id})"))
                    }
                    Some(_) => {}
                    None => {
                        self.committed.insert(offset, rec);
                    }
                }
            }
        }
        for (&offset, rec) in &self.acked {
            if self.committed.get(&offset) != Some(rec) {
                found.push(format!("acknowledged record {rec:?} at {offset} is not committed"));
            }
        }
        let mut holders: Vec<ReplicaId> = live_isr.clone();
        holders.extend(self.leader_id());
        for id in holders {
            let log = &self.replicas[&id].log;
            if let Some((&offset, rec)) = self.committed.iter().find(|(&offset, rec)| log.get(offset) != Some(rec)) {
                found.push(format!("replica {id} (ISR or leader) lost committed record {rec:?} at {offset}"));
            }
        }
        if let Some(leader_id) = self.leader_id() {
            let Role::Leader(leader) = &self.replicas[&leader_id].role else { unreachable!() };
            let leader_log = &self.replicas[&leader_id].log;
            for (&id, replica) in &self.replicas {
                let Role::Follower(follower) = &replica.role else { continue };
                if follower.leader_epoch() == leader.leader_epoch()
                    && follower.truncation_complete()
                    && !leader_log.starts_with(&replica.log)
                {
                    found.push(format!("follower {id}'s log is not a prefix of leader {leader_id}'s"));
                }
            }
        }
        for what in found {
            self.violation(what);
        }
    }

    /// Faults stop: everyone restarts, fetches flow, the controller answers.
    fn converge(&mut self, rounds: u32) -> Result<u32, String> {
        for id in self.ids.clone() {
            self.restart(id);
        }
        self.network.clear();
        for round in 0..rounds {
            while !self.alters.is_empty() {
                self.controller_step(0);
                self.check();
            }
            let leader = self.leader_id().ok_or("no leader after restarting everyone")?;
            let leader_log = self.replicas[&leader].log.clone();
            let Role::Leader(state) = &self.replicas[&leader].role else { unreachable!() };
            let done = state.high_watermark() as usize == leader_log.len()
                && self.controller.isr.len() == self.ids.len()
                && self.replicas.values().all(|r| r.log == leader_log);
            if done {
                return Ok(round);
            }
            for id in self.ids.clone() {
                self.send_fetch(id);
                while let Some(message) = self.network.pop() {
                    self.deliver_message(message);
                    self.check();
                }
            }
            self.tick(10);
            self.check();
        }
        Err(format!("did not converge in {rounds} rounds; controller {:?}", self.controller))
    }
}

#[derive(Debug, Clone)]
enum Action {
    Produce(usize),
    SendFetch(usize),
    Deliver(usize),
    Drop(usize),
    Duplicate(usize),
    Tick(u64),
    ControllerStep(usize),
    Flush(usize),
    Crash(usize, usize),
    Restart(usize),
    MoveLeader(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        10 => (1usize..=3).prop_map(Action::Produce),
        20 => any::<usize>().prop_map(Action::SendFetch),
        25 => any::<usize>().prop_map(Action::Deliver),
        4 => any::<usize>().prop_map(Action::Drop),
        2 => any::<usize>().prop_map(Action::Duplicate),
        8 => (0u64..400).prop_map(Action::Tick),
        8 => any::<usize>().prop_map(Action::ControllerStep),
        4 => any::<usize>().prop_map(Action::Flush),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(id, keep)| Action::Crash(id, keep)),
        3 => any::<usize>().prop_map(Action::Restart),
        2 => any::<usize>().prop_map(Action::MoveLeader),
    ]
}

fn apply(cluster: &mut Cluster, action: &Action) {
    let pick = |n: usize| cluster.ids[n % cluster.ids.len()];
    match *action {
        Action::Produce(count) => cluster.produce(count),
        Action::SendFetch(n) => cluster.send_fetch(pick(n)),
        Action::Deliver(i) => cluster.deliver(i),
        Action::Drop(i) => {
            if !cluster.network.is_empty() {
                let len = cluster.network.len();
                cluster.network.remove(i % len);
            }
        }
        Action::Duplicate(i) => {
            if !cluster.network.is_empty() {
                let copy = match &cluster.network[i % cluster.network.len()] {
                    Msg::Fetch { from, to, fetch } => Msg::Fetch { from: *from, to: *to, fetch: *fetch },
                    Msg::Response { to, response, records } => {
                        Msg::Response { to: *to, response: response.clone(), records: records.clone() }
                    }
                };
                cluster.network.push(copy);
            }
        }
        Action::Tick(ms) => cluster.tick(ms),
        Action::ControllerStep(i) => cluster.controller_step(i),
        Action::Flush(n) => cluster.flush(pick(n)),
        Action::Crash(n, keep) => cluster.crash(pick(n), keep),
        Action::Restart(n) => cluster.restart(pick(n)),
        Action::MoveLeader(n) => cluster.move_leader(n),
    }
}

fn proptest_cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(128)
}

fn config(truncate_to_high_watermark: bool) -> ReplicationConfig {
    ReplicationConfig { replica_lag_time_max_ms: 300, delayed_produce_max: 8, truncate_to_high_watermark }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: proptest_cases(),
        failure_persistence: None,
        max_shrink_iters: 2000,
        .. ProptestConfig::default()
    })]

    #[test]
    fn replication_random_faults_keep_committed_records(
        min_insync_replicas in 1usize..=2,
        max_fetch_records in 1usize..=4,
        actions in prop::collection::vec(action(), 50..300),
    ) {
        // Teaching experiment: with this set the search should fail.
        let knob = std::env::var_os("REPLICATION_TRUNCATE_TO_HW").is_some();
        let mut cluster = Cluster::new(3, config(knob), min_insync_replicas, max_fetch_records);
        for action in &actions {
            apply(&mut cluster, action);
            cluster.check();
            prop_assert!(cluster.violations.is_empty(), "after {:?}: {:?}", action, cluster.violations);
        }
        // One fetch per follower per round, `max_fetch_records` at a time.
        let longest = cluster.replicas.values().map(|r| r.log.len()).max().unwrap_or(0) as u32;
        let outcome = cluster.converge(20 + longest);
        prop_assert!(cluster.violations.is_empty(), "while converging: {:?}", cluster.violations);
        prop_assert!(outcome.is_ok(), "liveness: {:?}", outcome);
        if std::env::var_os("REPLICATION_TEST_STATS").is_some() {
            eprintln!(
                "stats: actions {} leader-epochs {} committed {} acked {} divergence-truncations {} isr-changes {} converged-in {:?}",
                actions.len(),
                cluster.controller.leader_epoch + 1,
                cluster.committed.len(),
                cluster.acked.len(),
                cluster.truncations,
                cluster.isr_changes,
                outcome
            );
        }
    }
}

impl Cluster {
    fn deliver_last(&mut self) {
        let message = self.network.pop().expect("a message in flight");
        self.deliver_message(message);
        self.check();
    }

    /// Follower `id` fetches once, request and response delivered.
    fn fetch_round_trip(&mut self, id: ReplicaId) {
        self.send_fetch(id);
        self.deliver_last();
        self.deliver_last();
        while !self.alters.is_empty() {
            self.controller_step(0);
            self.check();
        }
    }
}

/// KIP-101's first scenario, adapted to KRaft. Two replicas. Follower 2
/// fetches records 0-1, then fetches again at 2: the leader's high watermark
/// reaches 2 and the produce is acknowledged, but the response carrying the
/// new high watermark is lost, so 2's high watermark stays 0. The controller
/// then bumps the leader epoch (same leader), so 2 becomes a follower anew;
/// leader 1 crashes and 2 is elected. Returns the violations and the logs.
fn kip101_scenario(truncate_to_high_watermark: bool) -> (Vec<String>, Vec<Rec>, Vec<Rec>) {
    let mut c = Cluster::new(2, config(truncate_to_high_watermark), 1, 10);
    c.produce(2);
    c.fetch_round_trip(2);
    c.send_fetch(2);
    let fetch = c.network.pop().expect("fetch");
    c.deliver_message(fetch);
    c.network.clear(); // the response is lost
    c.check();
    assert_eq!(c.acked.len(), 2, "both records are acknowledged");
    assert_eq!(c.replicas[&2].hw_checkpoint, 0);
    c.elect(Some(1)); // new leader epoch: 2 becomes follower again
    c.check();
    c.flush(1);
    c.crash(1, 0); // 1 loses nothing; 2 is the only eligible leader
    assert_eq!(c.controller.leader, Some(2));
    c.check();
    c.produce(2);
    c.restart(1);
    for _ in 0..3 {
        c.fetch_round_trip(1);
    }
    c.check();
    (c.violations.clone(), c.replicas[&1].log.clone(), c.replicas[&2].log.clone())
}

#[test]
fn kip101_epoch_truncation_keeps_acknowledged_records() {
    let (violations, log1, log2) = kip101_scenario(false);
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(log1, log2);
    assert_eq!(log1.iter().map(|r| r.value).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
}

#[test]
fn truncate_to_high_watermark_knob_loses_acknowledged_records_and_diverges() {
    let (violations, log1, log2) = kip101_scenario(true);
    let has = |what: &str| violations.iter().any(|v| v.contains(what));
    assert!(has("passes ISR member 2's log end"), "{violations:?}");
    assert!(has("lost committed record"), "{violations:?}");
    assert!(has("is not a prefix"), "{violations:?}");
    // Both are in the ISR, with different records at the same offsets.
    assert_eq!(log1.iter().map(|r| r.value).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(log2.iter().map(|r| r.value).collect::<Vec<_>>(), vec![2, 3]);
}

